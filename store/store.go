package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// DefaultDir returns the store directory of the project in projectDir:
// $DAGGER_HOME if set, else projectDir/.daggerflow. (.dagger is taken by the
// unrelated dagger.io tool.)
func DefaultDir(projectDir string) string {
	if d := os.Getenv("DAGGER_HOME"); d != "" {
		return d
	}
	return filepath.Join(projectDir, ".daggerflow")
}

// Store is the durable state of the engine: blobs and run metadata. It is
// safe for concurrent use, and several processes may use the same directory
// at the same time.
type Store struct {
	dir   string
	blobs *dirBlobs

	// wdb has a single connection, so that the writers of this process
	// queue in Go rather than in SQLite's busy handler, which polls with
	// sleeps of up to 100ms. Only writers of other processes wait there.
	wdb *sql.DB
	// rdb serves reads, which WAL mode runs concurrently with writes.
	rdb *sql.DB

	// Statements that run once per task are prepared once.
	upsertTask      *sql.Stmt
	deleteArtifacts *sql.Stmt
	insertArtifact  *sql.Stmt
	upsertAttempt   *sql.Stmt

	ids     idGen
	commits committer
}

// Open opens the store in dir, creating the directory layout and the
// database schema as needed.
func Open(ctx context.Context, dir string) (*Store, error) {
	s, err := open(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	return s, nil
}

func open(ctx context.Context, dir string) (_ *Store, err error) {
	// Later calls must not depend on the working directory.
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.closeResources())
		}
	}()
	if s.blobs, err = openBlobs(dir); err != nil {
		return nil, err
	}
	db := filepath.Join(dir, "meta.db")

	if s.wdb, err = sql.Open("sqlite", dsn(db, true)); err != nil {
		return nil, err
	}
	s.wdb.SetMaxOpenConns(1)
	if err := s.write(ctx, true, func(tx *sql.Tx) error { return migrate(ctx, tx) }); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		stmt **sql.Stmt
		sql  string
	}{
		{&s.upsertTask, upsertTaskSQL},
		{&s.deleteArtifacts, "DELETE FROM artifacts WHERE run_id = ? AND task_id = ?"},
		{&s.insertArtifact, "INSERT INTO artifacts (run_id, task_id, name, hash) VALUES (?, ?, ?, ?)"},
		{&s.upsertAttempt, upsertAttemptSQL},
	} {
		if *p.stmt, err = s.wdb.PrepareContext(ctx, p.sql); err != nil {
			return nil, err
		}
	}

	// The read pool is opened after the schema exists, as its connections
	// are read-only.
	if s.rdb, err = sql.Open("sqlite", dsn(db, false)); err != nil {
		return nil, err
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	s.rdb.SetMaxOpenConns(readers)
	s.rdb.SetMaxIdleConns(readers)
	if err := s.rdb.PingContext(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// dsn returns the data source name for the database at path. All
// connections wait up to 10s for locks held by other processes. Writers use
// WAL mode, so that readers never wait, synchronous=FULL, so that commits
// are durable, and BEGIN IMMEDIATE, so that a transaction takes the write
// lock before reading: upgrading a read transaction fails at once, without
// waiting, if another process wrote meanwhile.
func dsn(path string, write bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	if write {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Add("_pragma", "foreign_keys(1)")
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	p := filepath.ToSlash(path)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // a Windows drive letter: file:///C:/...
	}
	u := url.URL{Scheme: "file", Path: p, RawQuery: q.Encode()}
	return u.String()
}

// Close releases the resources of the store after waiting for the StartTask
// and CommitTask calls in progress. It does not Sync blobs.
func (s *Store) Close() error {
	s.commits.close()
	if err := s.closeResources(); err != nil {
		return fmt.Errorf("store: close %s: %w", s.dir, err)
	}
	return nil
}

func (s *Store) closeResources() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.upsertTask, s.deleteArtifacts, s.insertArtifact, s.upsertAttempt} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	for _, db := range []*sql.DB{s.rdb, s.wdb} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	if s.blobs != nil {
		errs = append(errs, s.blobs.close())
	}
	return errors.Join(errs...)
}

// Blobs returns the blob store.
func (s *Store) Blobs() Blobs {
	return s.blobs
}

// write runs fn in a write transaction. With durable false, the commit uses
// synchronous=NORMAL: it is atomic but survives a power failure only once a
// later durable commit has flushed the write-ahead log, which saves a device
// flush for records that are worthless after a crash anyway.
func (s *Store) write(ctx context.Context, durable bool, fn func(*sql.Tx) error) error {
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return err
	}
	return errors.Join(writeConn(ctx, conn, durable, fn), conn.Close())
}

func writeConn(ctx context.Context, conn *sql.Conn, durable bool, fn func(*sql.Tx) error) error {
	// The level must be set outside the transaction, and on every write
	// since the connection is shared.
	level := "PRAGMA synchronous = NORMAL"
	if durable {
		level = "PRAGMA synchronous = FULL"
	}
	if _, err := conn.ExecContext(ctx, level); err != nil {
		return err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, rollback(tx))
	}
	return tx.Commit()
}

// rollback rolls tx back unless database/sql already did because its
// context ended.
func rollback(tx *sql.Tx) error {
	if err := tx.Rollback(); !errors.Is(err, sql.ErrTxDone) {
		return err
	}
	return nil
}

// read runs fn in a read transaction, which sees a consistent snapshot.
func (s *Store) read(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	return errors.Join(fn(tx), rollback(tx))
}
