package store

import (
	"context"
	"database/sql"
	"fmt"
)

// schemaVersion is the version of the schema below. A store whose recorded
// version is newer was written by a newer dagger and is refused rather than
// misread; an older one is upgraded by the migrations.
//
// Version 2 added the blobs table and tasks.foreach; version 3,
// runs.datastore; version 4, runs.executor; version 5, runs.driver;
// version 6, runs.setup_logs; version 7, the indexes tasks_by_index and
// tasks_by_duration. The index artifacts_by_hash of earlier versions is
// dropped without a version of its own (see dropUnusedIndex).
const schemaVersion = 7

// schema creates the metadata tables of a new store. Times are Unix
// nanoseconds in UTC, NULL when unset; lists and maps are JSON text, NULL
// when empty. Tasks are numbered by seq in the order they were first
// recorded, which is their start order. Columns added by migrations come
// last, where ALTER TABLE puts them in upgraded stores.
const schema = `
CREATE TABLE schema_version (
	version INTEGER NOT NULL
) STRICT;

CREATE TABLE runs (
	id        TEXT PRIMARY KEY,
	flow      TEXT NOT NULL,
	flow_path TEXT NOT NULL,
	code_hash TEXT NOT NULL,
	params    TEXT,
	status    TEXT NOT NULL,
	origin    TEXT NOT NULL,
	created   INTEGER NOT NULL,
	ended     INTEGER,
	error     TEXT NOT NULL,
	datastore TEXT NOT NULL DEFAULT '',
	executor  TEXT NOT NULL DEFAULT '',
	driver    TEXT NOT NULL DEFAULT '',
	setup_logs TEXT NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX runs_by_flow ON runs (flow, id);

CREATE TABLE tasks (
	seq         INTEGER PRIMARY KEY,
	run_id      TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	id          TEXT NOT NULL,
	step        TEXT NOT NULL,
	parents     TEXT,
	idx         TEXT,
	status      TEXT NOT NULL,
	attempt     INTEGER NOT NULL,
	started     INTEGER,
	ended       INTEGER,
	next        TEXT,
	foreach_len INTEGER NOT NULL,
	logs        TEXT NOT NULL,
	error       TEXT NOT NULL,
	origin      TEXT NOT NULL,
	foreach     TEXT,
	UNIQUE (run_id, id)
) STRICT;

CREATE TABLE attempts (
	run_id  TEXT NOT NULL,
	task_id TEXT NOT NULL,
	n       INTEGER NOT NULL,
	status  TEXT NOT NULL,
	started INTEGER,
	ended   INTEGER,
	error   TEXT NOT NULL,
	logs    TEXT NOT NULL,
	PRIMARY KEY (run_id, task_id, n),
	FOREIGN KEY (run_id, task_id) REFERENCES tasks (run_id, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE TABLE artifacts (
	run_id  TEXT NOT NULL,
	task_id TEXT NOT NULL,
	name    TEXT NOT NULL,
	hash    TEXT NOT NULL,
	PRIMARY KEY (run_id, task_id, name),
	FOREIGN KEY (run_id, task_id) REFERENCES tasks (run_id, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

` + blobsTable + taskIndexes

// blobsTable holds the small blobs (see inlineMax), keyed by their Hash.
// It has a rowid, unlike the tables of small records above, because rows of
// up to inlineMax bytes would make a clustered primary key index slow.
const blobsTable = `
CREATE TABLE blobs (
	hash TEXT PRIMARY KEY,
	data BLOB NOT NULL
) STRICT;
`

// taskIndexes order the tasks of a step as store.TaskPage asks for them,
// so that a page of a step of 100 000 tasks is read off an index rather
// than sorted afresh: tasks_by_index by the first number of their foreach
// index (deeper numbers, rare, are sorted among the tasks of equal first
// number), tasks_by_duration longest first, those that have not ended
// last. Their terms are those of TaskPage's ORDER BY; seq (the rowid)
// comes last, as in every index.
const taskIndexes = `
CREATE INDEX tasks_by_index ON tasks (run_id, step, CAST(substr(idx, 2) AS INTEGER));
CREATE INDEX tasks_by_duration ON tasks (run_id, step, ended IS NULL, ended - started DESC);
`

// migration returns the statements that upgrade the schema from version
// from to version from+1.
func migration(from int) string {
	switch from {
	case 1:
		return "ALTER TABLE tasks ADD COLUMN foreach TEXT;\n" + blobsTable
	case 2:
		return "ALTER TABLE runs ADD COLUMN datastore TEXT NOT NULL DEFAULT '';"
	case 3:
		return "ALTER TABLE runs ADD COLUMN executor TEXT NOT NULL DEFAULT '';"
	case 4:
		return "ALTER TABLE runs ADD COLUMN driver TEXT NOT NULL DEFAULT '';"
	case 5:
		return "ALTER TABLE runs ADD COLUMN setup_logs TEXT NOT NULL DEFAULT '';"
	case 6:
		return taskIndexes
	}
	return ""
}

// querier is what schemaVersionOf needs of a connection or transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// schemaVersionOf returns the schema version of the database, 0 if it has
// no schema yet.
func schemaVersionOf(ctx context.Context, q querier) (int, error) {
	var tables int
	err := q.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'").Scan(&tables)
	if err != nil || tables == 0 {
		return 0, err
	}
	var v int
	if err := q.QueryRowContext(ctx, "SELECT version FROM schema_version").Scan(&v); err != nil {
		return 0, err
	}
	return v, nil
}

// dropUnusedIndex drops the index artifacts_by_hash, which stores made
// before this version of dagger have, if db has it. No query used it, and
// it cost each recorded artifact an insert at a random place in it: 7 µs
// of the 12 that recording one took. A dagger that reads or writes schema
// version 7 works as well without it, so dropping it needs no new
// version, which older daggers would refuse.
func dropUnusedIndex(ctx context.Context, db *sql.DB) error {
	var n int
	err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'artifacts_by_hash'").Scan(&n)
	if err != nil || n == 0 {
		return err
	}
	_, err = db.ExecContext(ctx, "DROP INDEX IF EXISTS artifacts_by_hash")
	return err
}

// migrate brings the schema of a new or older database up to schemaVersion.
func migrate(ctx context.Context, tx *sql.Tx) error {
	v, err := schemaVersionOf(ctx, tx)
	switch {
	case err != nil:
		return err
	case v > schemaVersion:
		return fmt.Errorf("schema version %d is newer than the supported version %d; upgrade dagger", v, schemaVersion)
	case v == schemaVersion:
		return nil
	case v == 0:
		if _, err := tx.ExecContext(ctx, schema); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO schema_version (version) VALUES (?)", schemaVersion)
		return err
	}
	for ; v < schemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, migration(v)); err != nil {
			return fmt.Errorf("upgrading schema version %d: %w", v, err)
		}
	}
	_, err = tx.ExecContext(ctx, "UPDATE schema_version SET version = ?", schemaVersion)
	return err
}
