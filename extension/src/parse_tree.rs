//! A borrowed parse-tree node: the one way a raw `pg_sys::Node` pointer reaches safe code.
//!
//! PostgreSQL hands us parse trees as raw pointers (the raw parser's result, a ProcessUtility
//! hook's `utilityStmt`). They are alive only as long as the memory context they were built in,
//! and nothing in the type says how long that is. A `NodeRef<'a>` can only be made by the code
//! that knows (its constructor is `unsafe`), and the lifetime `'a` then keeps it from outliving
//! that scope: safe functions take a `NodeRef` and never a raw pointer they would have to trust.

use pgrx::pg_sys;
use std::marker::PhantomData;

/// A possibly null pointer to a parse-tree node that, with every node reachable from it, stays
/// alive and unchanged for `'a`.
#[derive(Clone, Copy)]
pub struct NodeRef<'a> {
    ptr: *mut pg_sys::Node,
    _tree: PhantomData<&'a pg_sys::Node>,
}

impl<'a> NodeRef<'a> {
    /// Wraps a node of a parse tree.
    ///
    /// # Safety
    /// `ptr` is null or points to a well-formed node tree (every pointer in it null or valid for
    /// its type, as PostgreSQL's parser builds them) that is neither freed nor modified for `'a`:
    /// in practice, `'a` must end before the memory context holding the tree is reset or deleted.
    pub unsafe fn new(ptr: *mut pg_sys::Node) -> Self {
        NodeRef {
            ptr,
            _tree: PhantomData,
        }
    }

    /// The raw pointer, for the `unsafe` code that walks the tree: it may rely on the
    /// constructor's contract for the pointer and every node below it, for as long as `'a`.
    pub fn as_ptr(self) -> *mut pg_sys::Node {
        self.ptr
    }

    pub fn is_null(self) -> bool {
        self.ptr.is_null()
    }

    /// The node's tag; `None` for a null node.
    pub fn tag(self) -> Option<pg_sys::NodeTag> {
        // SAFETY: by the constructor's contract a non-null `ptr` points to a live node, and every
        // node starts with its tag.
        (!self.ptr.is_null()).then(|| unsafe { (*self.ptr).type_ })
    }
}
