package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// schemaVersion is the version of the schema below. A store whose recorded
// version is newer was written by a newer dagger and is refused rather than
// misread.
const schemaVersion = 1

// schema creates the metadata tables. Times are Unix nanoseconds in UTC,
// NULL when unset; lists and maps are JSON text, NULL when empty. Tasks are
// numbered by seq in the order they were first recorded, which is their
// start order.
const schema = `
CREATE TABLE IF NOT EXISTS schema_version (
	version INTEGER NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS runs (
	id        TEXT PRIMARY KEY,
	flow      TEXT NOT NULL,
	flow_path TEXT NOT NULL,
	code_hash TEXT NOT NULL,
	params    TEXT,
	status    TEXT NOT NULL,
	origin    TEXT NOT NULL,
	created   INTEGER NOT NULL,
	ended     INTEGER,
	error     TEXT NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS runs_by_flow ON runs (flow, id);

CREATE TABLE IF NOT EXISTS tasks (
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
	UNIQUE (run_id, id)
) STRICT;

CREATE TABLE IF NOT EXISTS attempts (
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

CREATE TABLE IF NOT EXISTS artifacts (
	run_id  TEXT NOT NULL,
	task_id TEXT NOT NULL,
	name    TEXT NOT NULL,
	hash    TEXT NOT NULL,
	PRIMARY KEY (run_id, task_id, name),
	FOREIGN KEY (run_id, task_id) REFERENCES tasks (run_id, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- Finds the tasks that produced a blob, and tells garbage collection which
-- blobs are still referenced.
CREATE INDEX IF NOT EXISTS artifacts_by_hash ON artifacts (hash);
`

// migrate brings the schema of a new or older database up to schemaVersion.
func migrate(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return err
	}
	var v int
	err := tx.QueryRowContext(ctx, "SELECT version FROM schema_version").Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		_, err = tx.ExecContext(ctx, "INSERT INTO schema_version (version) VALUES (?)", schemaVersion)
		return err
	case err != nil:
		return err
	case v > schemaVersion:
		return fmt.Errorf("schema version %d is newer than the supported version %d; upgrade dagger", v, schemaVersion)
	}
	return nil
}
