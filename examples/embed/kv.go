package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/daggerflow/dagger/builtins"
)

// A kvStore is the capability this program gives flows: read-only
// lookups in a table of keys and values in a SQLite database. Tasks run in
// parallel, so it opens the database once, on first use, and shares it.
type kvStore struct {
	path string

	once sync.Once
	db   *sql.DB
	err  error
}

// createKV makes the database at path with the rows given.
func createKV(ctx context.Context, path string, rows map[string]string) error {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)"); err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	for k, v := range rows {
		if _, err := db.ExecContext(ctx, "INSERT INTO kv (key, value) VALUES (?, ?)", k, v); err != nil {
			return fmt.Errorf("filling %s: %w", path, err)
		}
	}
	return nil
}

func (kv *kvStore) open() (*sql.DB, error) {
	kv.once.Do(func() {
		if kv.path == "" {
			kv.err = fmt.Errorf("no database: set $%s to its path", dbEnv)
			return
		}
		kv.db, kv.err = sql.Open("sqlite", "file:"+kv.path+"?mode=ro")
	})
	return kv.db, kv.err
}

func (kv *kvStore) close() error {
	if kv.db == nil {
		return nil
	}
	return kv.db.Close()
}

// module returns the kv module flows see: kv.get(key, default) returns the
// value of key, a string, or default when there is none; without a
// default, a missing key fails the task.
func (kv *kvStore) module() *starlarkstruct.Module {
	return &starlarkstruct.Module{Name: "kv", Members: starlark.StringDict{
		"get": starlark.NewBuiltin("kv.get", kv.get),
	}}
}

func (kv *kvStore) get(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var key string
	var def starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "key", &key, "default?", &def); err != nil {
		return nil, err
	}
	// Starlark puts the builtin's name before its errors.
	db, err := kv.open()
	if err != nil {
		return nil, err
	}
	// A cancelled task stops waiting for the database.
	ctx := builtins.ThreadContext(thread)
	var value string
	err = db.QueryRowContext(ctx, "SELECT value FROM kv WHERE key = ?", key).Scan(&value)
	switch {
	case errors.Is(err, sql.ErrNoRows) && def != nil:
		return def, nil
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("no key %q", key)
	case err != nil:
		return nil, fmt.Errorf("reading %q: %w", key, err)
	}
	return starlark.String(value), nil
}
