-- Fixtures for sql/test_checks.sh: objects that violate each built-in check, and objects that
-- do not. Loaded into a fresh database after `CREATE SCHEMA repair; \i sql/checks.sql`.
-- The expected results are asserted in test_checks.sh; keep both files in sync.

CREATE SCHEMA app;

-- A bytea -> uuid FK cannot be created without an implicit cast (no bytea = uuid operator);
-- with one (as some applications add) PostgreSQL accepts it, which is how such FKs appear.
-- (The classic case, text -> uuid, is refused by PostgreSQL 18 when the FK is created: "key
-- columns are not both collatable". Both bytea and uuid are not collatable, so this mismatch can
-- be created on 15, 17 and 18 alike; the check compares types whatever they are.)
CREATE CAST (bytea AS uuid) WITH INOUT AS IMPLICIT;

-- ---------------------------------------------------------------------------------------------
-- Foreign keys: types and indexes
-- ---------------------------------------------------------------------------------------------
CREATE TABLE app.accounts (id uuid PRIMARY KEY);
CREATE TABLE app.account_notes (
    id         integer PRIMARY KEY,
    account_id bytea REFERENCES app.accounts (id)         -- VIOLATION type: bytea vs uuid
);
CREATE INDEX account_notes_account_id_idx ON app.account_notes (account_id);   -- indexed

CREATE TABLE app.customers (id integer PRIMARY KEY, email text NOT NULL);
INSERT INTO app.customers VALUES (1, 'a@x'), (2, 'b@x'), (3, 'c@x');
CREATE TABLE app.orders (
    id          bigint PRIMARY KEY,
    customer_id bigint REFERENCES app.customers (id)      -- VIOLATION type: bigint vs integer
);                                                        -- VIOLATION index: none

CREATE TABLE app.products (id integer PRIMARY KEY);
CREATE TABLE app.order_lines (
    id         integer PRIMARY KEY,
    order_id   bigint  REFERENCES app.orders (id),        -- types match
    product_id integer REFERENCES app.products (id)       -- types match
);
-- leading column product_id: supports product_id FK, NOT order_id FK (VIOLATION index)
CREATE INDEX order_lines_product_order_idx ON app.order_lines (product_id, order_id);

CREATE TABLE app.codes (code varchar(20) PRIMARY KEY);
CREATE TABLE app.code_uses (
    id   integer PRIMARY KEY,
    code varchar(10) REFERENCES app.codes (code)           -- VIOLATION type: typmod differs
);
-- a partial index does not count (VIOLATION index)
CREATE INDEX code_uses_code_partial_idx ON app.code_uses (code) WHERE code IS NOT NULL;

-- domain over integer referencing integer: NOT a mismatch; indexed
CREATE DOMAIN app.customer_ref AS integer CHECK (VALUE > 0);
CREATE TABLE app.invoices (
    id          integer PRIMARY KEY,
    customer_id app.customer_ref REFERENCES app.customers (id)
);
CREATE INDEX invoices_customer_id_idx ON app.invoices (customer_id);

-- multi-column FK: only column b mismatches; index (b, a, note) covers (a, b) in any order
CREATE TABLE app.pairs (a integer, b integer, PRIMARY KEY (a, b));
CREATE TABLE app.pair_refs (
    id   integer PRIMARY KEY,
    a    integer,
    b    bigint,
    note text,
    CONSTRAINT pair_refs_pair_fkey FOREIGN KEY (a, b) REFERENCES app.pairs (a, b)
);
CREATE INDEX pair_refs_b_a_idx ON app.pair_refs (b, a, note);

-- partitioned table: no PK (VIOLATION pk, reported once), FK with type mismatch reported once,
-- FK supported by a partitioned index; an invalid partitioned index (ON ONLY, not attached)
CREATE TABLE app.events (
    id          integer NOT NULL,
    tenant      integer NOT NULL,
    customer_id bigint REFERENCES app.customers (id)      -- VIOLATION type: bigint vs integer
) PARTITION BY LIST (tenant);
CREATE TABLE app.events_t1 PARTITION OF app.events FOR VALUES IN (1);
CREATE TABLE app.events_t2 PARTITION OF app.events FOR VALUES IN (2);
CREATE INDEX events_customer_id_idx ON app.events (customer_id);
CREATE INDEX events_tenant_idx ON ONLY app.events (tenant);   -- VIOLATION invalid index

-- partitioned table with a PK: neither it nor its partitions are reported
CREATE TABLE app.measurements (
    id integer NOT NULL,
    at date    NOT NULL,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE app.measurements_2024 PARTITION OF app.measurements
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');

-- FK to a partitioned table (PostgreSQL adds one pg_constraint row per referenced partition):
-- types match; no index (VIOLATION index, reported once)
CREATE TABLE app.readings (
    id   integer PRIMARY KEY,
    m_id integer,
    m_at date,
    FOREIGN KEY (m_id, m_at) REFERENCES app.measurements (id, at)
);

-- invalid index: see test_checks.sh, a CREATE UNIQUE INDEX CONCURRENTLY on duplicate values
-- (outside any transaction) leaves app.dups_cust_uq invalid
CREATE TABLE app.dups (
    id          integer PRIMARY KEY,
    customer_id integer REFERENCES app.customers (id)     -- VIOLATION index: only invalid one
);
INSERT INTO app.dups VALUES (1, 1), (2, 1), (3, 2);

-- ---------------------------------------------------------------------------------------------
-- Tables without primary key, quoting, exclusions
-- ---------------------------------------------------------------------------------------------
CREATE TABLE app.no_pk (x integer);                        -- VIOLATION pk
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Mixed Case" (x integer);        -- VIOLATION pk (quoted name)

-- excluded everywhere: the extension's schema, extension members, temporary tables
CREATE TABLE repair.internal_no_pk (x integer, customer_id bigint REFERENCES app.customers (id));
CREATE EXTENSION citext;
CREATE TABLE app.ext_owned (x integer, customer_id bigint REFERENCES app.customers (id));
ALTER EXTENSION citext ADD TABLE app.ext_owned;

-- ---------------------------------------------------------------------------------------------
-- Partial unique indexes
-- ---------------------------------------------------------------------------------------------
CREATE TABLE app.subscriptions (
    id         integer PRIMARY KEY,
    user_id    integer NOT NULL,
    plan       text NOT NULL,
    status     varchar(20) NOT NULL,
    email      text,
    deleted_at timestamptz
);
CREATE UNIQUE INDEX subscriptions_active_uq ON app.subscriptions (user_id, plan)
    WHERE status = 'ACTIVE';
CREATE UNIQUE INDEX subscriptions_email_uq ON app.subscriptions (email);      -- not partial
CREATE INDEX subscriptions_user_live_idx ON app.subscriptions (user_id)
    WHERE deleted_at IS NULL;                                                  -- not unique

-- ---------------------------------------------------------------------------------------------
-- Orphans (no FK declared: legacy data)
-- ---------------------------------------------------------------------------------------------
CREATE TABLE app.legacy_orders (id integer PRIMARY KEY, customer_ref integer);
INSERT INTO app.legacy_orders VALUES (1, 1), (2, 9), (3, 9), (4, NULL), (5, 7), (6, 3);
CREATE TABLE app.legacy_ok (id integer PRIMARY KEY, customer_ref integer);
INSERT INTO app.legacy_ok VALUES (1, 1), (2, 2), (3, NULL);
CREATE TABLE app.legacy_text (id integer PRIMARY KEY, customer_ref text);   -- text vs integer
INSERT INTO app.legacy_text VALUES (1, '1'), (2, '42'), (3, '42'), (4, '2');

-- ---------------------------------------------------------------------------------------------
-- Roles
-- ---------------------------------------------------------------------------------------------
CREATE ROLE chk_grant LOGIN;                 -- DELETE granted directly
CREATE ROLE chk_group NOLOGIN;               -- holds DELETE + TRUNCATE on app.orders
CREATE ROLE chk_member LOGIN IN ROLE chk_group;             -- via (inherited) membership
CREATE ROLE chk_noinherit LOGIN NOINHERIT IN ROLE chk_group; -- via SET ROLE chk_group
CREATE ROLE chk_readonly LOGIN;              -- SELECT only
GRANT USAGE ON SCHEMA app TO chk_grant, chk_group, chk_readonly;
GRANT SELECT ON ALL TABLES IN SCHEMA app TO chk_readonly;
GRANT SELECT, DELETE ON app.customers TO chk_grant;
GRANT DELETE, TRUNCATE ON app.orders TO chk_group;

CREATE VIEW app.customer_emails AS SELECT id, email FROM app.customers;      -- auto-updatable
CREATE VIEW app.customer_count AS SELECT count(*) AS n FROM app.customers;   -- not updatable
GRANT DELETE ON app.customer_emails TO chk_grant;   -- DELETE through the view: reported
GRANT ALL ON app.customer_count TO chk_grant;       -- cannot delete through it: not reported
