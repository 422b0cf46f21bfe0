//! The extension's catalog as normalised text, object by object, for comparing an upgraded
//! database with a fresh CREATE EXTENSION. Names, never OIDs (regclass/regproc print qualified
//! names because the snapshot runs with search_path = pg_catalog). Every query reads only columns
//! that PostgreSQL 15, 17 and 18 all have.

use postgres::Client;
use std::collections::BTreeMap;

/// Object ("column repair.runs.seq") -> its describing lines, in a fixed order.
pub type Snapshot = BTreeMap<String, Vec<String>>;

/// `acl` as sorted aclitems; NULL is spelled out as the default it stands for (`kind` is the SQL
/// for acldefault's object type), so an explicit ACL equal to the default compares equal and a
/// function left executable by PUBLIC does not.
fn acl(acl: &str, kind: &str, owner: &str) -> String {
    format!(
        "(SELECT coalesce(string_agg(a::text, ' ' ORDER BY a::text), '') \
            FROM unnest(coalesce({acl}, acldefault({kind}, {owner}))) a)"
    )
}

/// One query per kind of object: (object, ord, line).
fn queries() -> Vec<(&'static str, String)> {
    let ns = "(SELECT oid FROM pg_namespace WHERE nspname = 'repair')";
    let ext = "(SELECT oid FROM pg_extension WHERE extname = 'pg_repair')";
    vec![
        ("schema", format!(
            "SELECT 'schema ' || n.nspname, v.o, v.l FROM pg_namespace n, LATERAL (VALUES \
               (1, 'owner ' || pg_get_userbyid(n.nspowner)), \
               (2, 'acl ' || {})) v(o, l) \
             WHERE n.oid = {ns}",
            acl("n.nspacl", "'n'", "n.nspowner"))),
        ("relations", format!(
            "SELECT 'relation repair.' || c.relname, v.o, v.l FROM pg_class c, LATERAL (VALUES \
               (1, 'kind ' || c.relkind::text || ' persistence ' || c.relpersistence::text), \
               (2, 'owner ' || pg_get_userbyid(c.relowner)), \
               (3, 'acl ' || {}), \
               (4, 'row security ' || c.relrowsecurity || ' forced ' || c.relforcerowsecurity), \
               (5, 'options ' || coalesce(array_to_string(c.reloptions, ','), '')), \
               (6, 'replica identity ' || c.relreplident::text), \
               (7, 'view ' || CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) ELSE '' END)) v(o, l) \
             WHERE c.relnamespace = {ns} AND c.relkind NOT IN ('i', 'I')",
            acl("c.relacl", "CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::\"char\"", "c.relowner"))),
        ("sequences",
            format!("SELECT 'relation repair.' || c.relname, 10 + v.o, v.l \
               FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid, LATERAL (VALUES \
               (1, 'sequence ' || format_type(s.seqtypid, NULL) || ' start ' || s.seqstart \
                   || ' increment ' || s.seqincrement || ' min ' || s.seqmin || ' max ' || s.seqmax \
                   || ' cache ' || s.seqcache || ' cycle ' || s.seqcycle), \
               (2, 'owned by ' || coalesce((SELECT d.refobjid::regclass::text || '.' || a.attname \
                      FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
                     WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
                       AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')), '(none)'))) v(o, l) \
             WHERE c.relnamespace = {ns}")),
        ("columns", format!(
            "SELECT 'column repair.' || c.relname || '.' || a.attname, v.o, v.l \
               FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum, LATERAL (VALUES \
               (1, 'position ' || (SELECT count(*) FROM pg_attribute a2 WHERE a2.attrelid = a.attrelid \
                                    AND a2.attnum > 0 AND NOT a2.attisdropped AND a2.attnum <= a.attnum)), \
               (2, 'type ' || format_type(a.atttypid, a.atttypmod)), \
               (3, 'not null ' || a.attnotnull), \
               (4, 'default ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '(none)')), \
               (5, 'identity ' || coalesce(nullif(a.attidentity::text, ''), '(none)') \
                   || ' generated ' || coalesce(nullif(a.attgenerated::text, ''), '(none)')), \
               (6, 'collation ' || coalesce((SELECT collname FROM pg_collation WHERE oid = a.attcollation), '(none)')), \
               (7, 'storage ' || a.attstorage::text), \
               (8, 'acl ' || coalesce((SELECT string_agg(x::text, ' ' ORDER BY x::text) FROM unnest(a.attacl) x), '(none)'))) v(o, l) \
             WHERE c.relnamespace = {ns} AND c.relkind IN ('r', 'p', 'v', 'm', 'f')")),
        ("constraints", format!(
            "SELECT 'constraint repair.' || c.relname || '.' || k.conname, v.o, v.l \
               FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid, LATERAL (VALUES \
               (1, 'type ' || k.contype::text), \
               (2, 'definition ' || pg_get_constraintdef(k.oid)), \
               (3, 'validated ' || k.convalidated || ' local ' || k.conislocal), \
               (4, 'index ' || CASE WHEN k.conindid = 0 THEN '(none)' ELSE k.conindid::regclass::text END)) v(o, l) \
             WHERE c.relnamespace = {ns}")),
        ("indexes", format!(
            "SELECT 'index repair.' || ic.relname, v.o, v.l \
               FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid, LATERAL (VALUES \
               (1, 'definition ' || pg_get_indexdef(i.indexrelid)), \
               (2, 'unique ' || i.indisunique || ' primary ' || i.indisprimary || ' valid ' || i.indisvalid \
                   || ' ready ' || i.indisready || ' clustered ' || i.indisclustered \
                   || ' replica identity ' || i.indisreplident), \
               (3, 'owner ' || pg_get_userbyid(ic.relowner))) v(o, l) \
             WHERE ic.relnamespace = {ns}")),
        ("triggers", format!(
            "SELECT 'trigger repair.' || c.relname || '.' || t.tgname, v.o, v.l \
               FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid, LATERAL (VALUES \
               (1, 'definition ' || pg_get_triggerdef(t.oid)), \
               (2, 'enabled ' || t.tgenabled::text)) v(o, l) \
             WHERE c.relnamespace = {ns} AND NOT t.tgisinternal")),
        ("policies", format!(
            "SELECT 'policy repair.' || c.relname || '.' || p.polname, 1, \
                    'command ' || p.polcmd::text || ' permissive ' || p.polpermissive \
                    || ' roles ' || p.polroles::regrole[]::text \
                    || ' using ' || coalesce(pg_get_expr(p.polqual, p.polrelid), '(none)') \
                    || ' check ' || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '(none)') \
               FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid WHERE c.relnamespace = {ns}")),
        ("rules", format!(
            "SELECT 'rule repair.' || c.relname || '.' || r.rulename, 1, \
                    'enabled ' || r.ev_enabled::text || ' ' || pg_get_ruledef(r.oid) \
               FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class \
              WHERE c.relnamespace = {ns} AND r.rulename <> '_RETURN'")),
        ("functions", format!(
            "SELECT 'function repair.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', v.o, v.l \
               FROM pg_proc p JOIN pg_language lg ON lg.oid = p.prolang, LATERAL (VALUES \
               (1, 'kind ' || p.prokind::text || ' language ' || lg.lanname), \
               (2, 'arguments ' || pg_get_function_arguments(p.oid)), \
               (3, 'result ' || coalesce(pg_get_function_result(p.oid), '')), \
               (4, 'security definer ' || p.prosecdef), \
               (5, 'volatility ' || p.provolatile::text || ' parallel ' || p.proparallel::text \
                   || ' strict ' || p.proisstrict || ' leakproof ' || p.proleakproof \
                   || ' cost ' || p.procost || ' rows ' || p.prorows), \
               (6, 'set ' || coalesce((SELECT string_agg(x, ', ' ORDER BY x) FROM unnest(p.proconfig) x), '(none)')), \
               (7, 'owner ' || pg_get_userbyid(p.proowner)), \
               (8, 'acl ' || {}), \
               (9, 'library ' || coalesce(p.probin, '(none)')), \
               (10, 'source ' || p.prosrc), \
               (11, 'sql body ' || coalesce(pg_get_function_sqlbody(p.oid), '(none)'))) v(o, l) \
             WHERE p.pronamespace = {ns}",
            acl("p.proacl", "'f'", "p.proowner"))),
        ("types", format!(
            "SELECT 'type repair.' || t.typname, 1, \
                    'kind ' || t.typtype::text || ' owner ' || pg_get_userbyid(t.typowner) || ' acl ' || {} \
               FROM pg_type t WHERE t.typnamespace = {ns}",
            acl("t.typacl", "'T'", "t.typowner"))),
        ("event triggers",
            "SELECT 'event trigger ' || e.evtname, v.o, v.l FROM pg_event_trigger e, LATERAL (VALUES \
               (1, 'event ' || e.evtevent), \
               (2, 'function ' || e.evtfoid::regprocedure::text), \
               (3, 'enabled ' || e.evtenabled::text), \
               (4, 'tags ' || coalesce(array_to_string(e.evttags, ','), '(all)')), \
               (5, 'owner ' || pg_get_userbyid(e.evtowner))) v(o, l)".to_string()),
        ("extension", format!(
            "SELECT 'extension ' || x.extname, v.o, v.l FROM pg_extension x, LATERAL (VALUES \
               (1, 'version ' || x.extversion), \
               (2, 'schema ' || x.extnamespace::regnamespace::text), \
               (3, 'relocatable ' || x.extrelocatable), \
               (4, 'owner ' || pg_get_userbyid(x.extowner))) v(o, l) \
             WHERE x.oid = {ext}")),
        // pg_extension.extconfig/extcondition: which tables and sequences pg_dump dumps the data of.
        ("config dump", format!(
            "SELECT 'config dump ' || c.cfg::regclass::text, 1, \
                    'condition ' || quote_literal(coalesce(c.cond, '(none)')) \
               FROM pg_extension x, unnest(x.extconfig, x.extcondition) AS c(cfg, cond) \
              WHERE x.oid = {ext}")),
        ("members", format!(
            "SELECT 'member ' || pg_describe_object(d.classid, d.objid, 0), 1, 'of pg_repair' \
               FROM pg_depend d WHERE d.refclassid = 'pg_extension'::regclass \
                AND d.refobjid = {ext} AND d.deptype = 'e'")),
        // The privileges pg_dump takes as the extension's own (and leaves out of a dump).
        ("initial privileges",
            "SELECT 'initial privileges ' || pg_describe_object(i.classoid, i.objoid, i.objsubid), 1, \
                    'type ' || i.privtype::text || ' ' \
                    || coalesce((SELECT string_agg(x::text, ' ' ORDER BY x::text) FROM unnest(i.initprivs) x), '') \
               FROM pg_init_privs i WHERE i.privtype = 'e'".to_string()),
        ("comments", format!(
            "SELECT 'comment on ' || pg_describe_object(d.classoid, d.objoid, d.objsubid), 1, d.description \
               FROM pg_description d \
              WHERE (pg_identify_object(d.classoid, d.objoid, d.objsubid)).schema = 'repair' \
                 OR (d.classoid = 'pg_namespace'::regclass AND d.objoid = {ns}) \
                 OR d.classoid = 'pg_event_trigger'::regclass \
                 OR EXISTS (SELECT 1 FROM pg_depend e WHERE e.refclassid = 'pg_extension'::regclass \
                              AND e.refobjid = {ext} AND e.deptype = 'e' \
                              AND e.classid = d.classoid AND e.objid = d.objoid)")),
    ]
}

/// The extension's catalog in `c`'s database.
pub fn snapshot(c: &mut Client) -> Snapshot {
    c.batch_execute("SET search_path = pg_catalog")
        .expect("search_path");
    let mut out: BTreeMap<String, Vec<(i32, String)>> = BTreeMap::new();
    for (what, sql) in queries() {
        let rows = c
            .query(&sql, &[])
            .unwrap_or_else(|e| panic!("catalog query for {what}: {e}\n{sql}"));
        for r in rows {
            let (object, ord, line): (String, i32, Option<String>) = (r.get(0), r.get(1), r.get(2));
            out.entry(object)
                .or_default()
                .push((ord, line.unwrap_or_else(|| "(null)".into())));
        }
    }
    c.batch_execute("RESET search_path").expect("search_path");
    out.into_iter()
        .map(|(k, mut v)| {
            v.sort();
            (k, v.into_iter().map(|(_, l)| l).collect())
        })
        .collect()
}

/// Every object that differs, each as a paragraph naming it.
pub fn differences(upgraded: &Snapshot, fresh: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (object, lines) in upgraded {
        match fresh.get(object) {
            None => out.push(format!(
                "{object}: only in the upgraded database\n    {}",
                lines.join("\n    ")
            )),
            Some(f) if f != lines => {
                let mut d = format!("{object}: differs");
                for l in lines.iter().filter(|l| !f.contains(l)) {
                    d.push_str(&format!("\n    upgraded: {l}"));
                }
                for l in f.iter().filter(|l| !lines.contains(l)) {
                    d.push_str(&format!("\n    fresh:    {l}"));
                }
                out.push(d);
            }
            Some(_) => {}
        }
    }
    for (object, lines) in fresh {
        if !upgraded.contains_key(object) {
            out.push(format!(
                "{object}: only in a fresh CREATE EXTENSION (missing from the upgrade script)\n    {}",
                lines.join("\n    ")
            ));
        }
    }
    out
}

/// Panics naming every object where the upgraded catalog differs from a fresh install.
pub fn assert_same(upgraded: &Snapshot, fresh: &Snapshot, context: &str) {
    let diff = differences(upgraded, fresh);
    assert!(
        diff.is_empty(),
        "{context}: the catalog after ALTER EXTENSION pg_repair UPDATE differs from a fresh \
         CREATE EXTENSION in {} object(s). A schema change in sql/ needs the same change in the \
         upgrade script (extension/sql/pg_repair--A--B.sql); see CONTRIBUTING.md.\n\n{}\n",
        diff.len(),
        diff.join("\n\n")
    );
}

/// The snapshot must see what it claims to compare (a query that silently returns nothing would
/// make every comparison pass).
pub fn assert_covers(s: &Snapshot) {
    let expect: &[(&str, &str)] = &[
        ("schema repair", "acl "),
        ("relation repair.runs", "acl "),
        ("relation repair.runs_seq_seq", "owned by repair.runs.seq"),
        ("column repair.runs.row_hash", "type text"),
        ("column repair.playbook_versions.lint", "default '[]'::jsonb"),
        ("constraint repair.runs.runs_pkey", "type p"),
        ("index repair.runs_chain", "definition "),
        ("trigger repair.runs.deny_update_delete", "enabled A"),
        ("function repair.register(source text)", "security definer true"),
        ("function repair.register(source text)", "set search_path=pg_catalog, pg_temp"),
        ("function repair.execute(id text, expected_hash text, reason text, confirm_prod boolean, request_id text)", "set (none)"),
        ("event trigger pg_repair_protect_ddl", "enabled A"),
        ("extension pg_repair", "version "),
        ("config dump repair.runs", "condition "),
        ("member table repair.runs", "of pg_repair"),
        ("initial privileges function repair.register(text)", "type e"),
        ("comment on table repair.runs", "Audit trail"),
    ];
    for (object, line) in expect {
        let lines = s.get(*object).unwrap_or_else(|| {
            panic!(
                "the catalog snapshot has no {object:?}; it has {} objects",
                s.len()
            )
        });
        assert!(
            lines.iter().any(|l| l.starts_with(line)),
            "{object}: no line starting {line:?} in {lines:#?}"
        );
    }
}
