package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

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

// busyTimeout is how long a writer waits for the writers of other processes
// to release the database, and Open for other processes to finish setting
// the store up.
const busyTimeout = 10 * time.Second

// Store is the durable state of the engine: blobs and run metadata. It is
// safe for concurrent use, and several processes may use the same directory
// at the same time.
type Store struct {
	dir   string
	blobs *dirBlobs // blobs larger than inlineMax

	// inline holds the small blobs stored since the last durable write,
	// which writes them; see write.
	inline pendingBlobs
	// inlineMax and maxPending are inlineMax and maxPendingBytes, except
	// in tests.
	inlineMax, maxPending int
	closed                atomic.Bool

	// wdb has a single connection, so that the writers of this process
	// queue in Go rather than in SQLite's busy handler, which polls with
	// sleeps of up to 100ms. Only writers of other processes wait there.
	wdb *sql.DB
	// rdb serves reads, which WAL mode runs concurrently with writes.
	rdb *sql.DB

	// Statements that run once per task or blob are prepared once.
	upsertTask      *sql.Stmt
	deleteArtifacts *sql.Stmt
	insertArtifact  *sql.Stmt
	upsertAttempt   *sql.Stmt
	putBlob         *sql.Stmt
	getBlob         *sql.Stmt // of rdb

	ids     idGen
	commits committer
}

// Open opens the store in dir, creating the directory layout and the
// database schema, or upgrading the schema of an older store, as needed.
// Several processes may open the same store at once, even before it exists.
func Open(ctx context.Context, dir string) (*Store, error) {
	s, err := open(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	return s, nil
}

// ErrReadOnly is wrapped by the errors of writes to a store opened with
// OpenReadOnly.
var ErrReadOnly = errors.New("store opened read-only")

// ErrOldSchema is wrapped by the error of OpenReadOnly for a store that an
// older dagger wrote, which only Open, writing, can upgrade.
var ErrOldSchema = errors.New("store written by an older dagger")

// OpenReadOnly opens the store in dir to read it, changing nothing, and
// creating nothing, not even the lock file Open takes, but the meta.db-wal
// and meta.db-shm files that SQLite shares between the readers and the
// writer of a store, where it may: so a store on a read-only file system,
// or one that the user may read but not write, can be read.
// Writes to it fail with an error that wraps ErrReadOnly. A directory
// without a store is an error that wraps fs.ErrNotExist, and one whose
// schema is older than this dagger's wraps ErrOldSchema. Other processes
// may write to the store meanwhile.
func OpenReadOnly(ctx context.Context, dir string) (*Store, error) {
	s, err := openReadOnly(ctx, dir)
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
	s := &Store{dir: dir, inlineMax: inlineMax, maxPending: maxPendingBytes}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.closeResources())
		}
	}()
	if s.blobs, err = openBlobs(dir, true); err != nil {
		return nil, err
	}
	if err := s.setUp(ctx); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		db   *sql.DB
		stmt **sql.Stmt
		sql  string
	}{
		{s.wdb, &s.upsertTask, upsertTaskSQL},
		{s.wdb, &s.deleteArtifacts, "DELETE FROM artifacts WHERE run_id = ? AND task_id = ?"},
		{s.wdb, &s.insertArtifact, "INSERT INTO artifacts (run_id, task_id, name, hash) VALUES (?, ?, ?, ?)"},
		{s.wdb, &s.upsertAttempt, upsertAttemptSQL},
		{s.wdb, &s.putBlob, putBlobSQL},
	} {
		if *p.stmt, err = p.db.PrepareContext(ctx, p.sql); err != nil {
			return nil, err
		}
	}
	return s, s.prepareReads(ctx)
}

func openReadOnly(ctx context.Context, dir string) (_ *Store, err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	db := filepath.Join(dir, "meta.db")
	// SQLite would report a missing database as one it cannot open,
	// without saying why.
	if _, err := os.Stat(db); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, inlineMax: inlineMax, maxPending: maxPendingBytes}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.closeResources())
		}
	}()
	source := dsn(db, false) + "&mode=ro"
	if s.rdb, err = openReads(ctx, source); err != nil {
		// A reader of a database in WAL mode maps its -shm file, which
		// SQLite cannot create in a folder it cannot write. Without a
		// -wal file, or with an empty one, the database file holds every
		// write, and no one writes to it here: it can be read as
		// immutable, without the -shm file. With one, the last writes
		// are in it, which only a writer can apply.
		if info, walErr := os.Stat(db + "-wal"); !errors.Is(walErr, fs.ErrNotExist) && (walErr != nil || info.Size() > 0) {
			return nil, fmt.Errorf("%w; if the store cannot be written, %s-wal holds its last writes: open it once where it can be written, as dagger fsck --repair does", err, db)
		}
		if err := s.rdb.Close(); err != nil {
			return nil, err
		}
		if s.rdb, err = openReads(ctx, source+"&immutable=1"); err != nil {
			return nil, err
		}
	}
	switch v, err := schemaVersionOf(ctx, s.rdb); {
	case err != nil:
		return nil, err
	case v < schemaVersion:
		return nil, fmt.Errorf("%w (schema version %d, this one reads %d): a dagger command that writes to it, such as dagger run, upgrades it", ErrOldSchema, v, schemaVersion)
	case v > schemaVersion:
		return nil, fmt.Errorf("schema version %d is newer than the supported version %d; upgrade dagger", v, schemaVersion)
	}
	if s.blobs, err = openBlobs(dir, false); err != nil {
		return nil, err
	}
	return s, s.prepareReads(ctx)
}

// prepareReads prepares the statements of rdb.
func (s *Store) prepareReads(ctx context.Context) (err error) {
	s.getBlob, err = s.rdb.PrepareContext(ctx, "SELECT data FROM blobs WHERE hash = ?")
	return err
}

// setUp opens the database, creating or upgrading its schema.
//
// The first connection of each process sets WAL mode, which for a new
// database fails with SQLITE_BUSY, without waiting in the busy handler, if
// another process is setting the database up at the same moment. So
// processes take turns, holding a lock on the file <dir>/lock during setup.
// Processes that are done with it do not take the lock.
func (s *Store) setUp(ctx context.Context) (err error) {
	unlock, err := lockFile(ctx, filepath.Join(s.dir, "lock"))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, unlock()) }()

	db := filepath.Join(s.dir, "meta.db")
	if s.wdb, err = sql.Open("sqlite", dsn(db, true)); err != nil {
		return err
	}
	s.wdb.SetMaxOpenConns(1)
	// Most opens find the schema up to date, and need not compete with
	// the writers of other processes to check it.
	v, err := schemaVersionOf(ctx, s.wdb)
	if err != nil {
		return err
	}
	if v != schemaVersion {
		if err := s.write(ctx, true, func(tx *sql.Tx) error { return migrate(ctx, tx) }); err != nil {
			return err
		}
	}
	if err := dropUnusedIndex(ctx, s.wdb); err != nil {
		return err
	}

	// The read pool is opened after the schema exists, as its connections
	// are read-only.
	s.rdb, err = openReads(ctx, dsn(db, false))
	return err
}

// openReads opens the pool of read connections to the database at
// dataSource.
func openReads(ctx context.Context, dataSource string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dataSource)
	if err != nil {
		return nil, err
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	db.SetMaxOpenConns(readers)
	db.SetMaxIdleConns(readers)
	return db, db.PingContext(ctx)
}

// errNoLocking is returned by tryLock for file systems without file locks.
var errNoLocking = errors.New("file locking not supported")

// lockFile takes an exclusive lock on the file at path, creating it if
// needed, and returns the function that releases it. It waits for other
// processes to release the lock, up to busyTimeout. On a file system
// without locks, it goes ahead unlocked.
func lockFile(ctx context.Context, path string) (unlock func() error, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(busyTimeout)
	for delay := 100 * time.Microsecond; ; delay = min(2*delay, 20*time.Millisecond) {
		ok, err := tryLock(f)
		switch {
		case ok, errors.Is(err, errNoLocking):
			// Closing the file releases the lock.
			return f.Close, nil
		case err != nil:
			return nil, errors.Join(fmt.Errorf("lock %s: %w", path, err), f.Close())
		case time.Now().After(deadline):
			return nil, errors.Join(fmt.Errorf("lock %s: held by another process for over %v", path, busyTimeout), f.Close())
		}
		select {
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), f.Close())
		case <-time.After(delay):
		}
	}
}

// dsn returns the data source name for the database at path. All
// connections wait up to busyTimeout for locks held by other processes.
// Writers use WAL mode, so that readers never wait, synchronous=FULL, so
// that commits are durable, and BEGIN IMMEDIATE, so that a transaction takes
// the write lock before reading: upgrading a read transaction fails at once,
// without waiting, if another process wrote meanwhile.
func dsn(path string, write bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busyTimeout.Milliseconds(), 10)+")")
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
// and CommitTask calls in progress. It does not Sync blobs, but writes the
// small blobs that no durable write has taken yet to the database, without
// flushing them, so that they stay visible like blob files do: they become
// durable with the next durable write to the store by any process.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.commits.close()
	var err error
	if !s.inline.empty() {
		err = s.writeTx(context.Background(), false, true, func(*sql.Tx) error { return nil })
	}
	if err := errors.Join(err, s.closeResources()); err != nil {
		return fmt.Errorf("store: close %s: %w", s.dir, err)
	}
	return nil
}

func (s *Store) closeResources() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.upsertTask, s.deleteArtifacts, s.insertArtifact, s.upsertAttempt, s.putBlob, s.getBlob} {
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
	return storeBlobs{s}
}

// write runs fn in a write transaction. With durable false, the commit uses
// synchronous=NORMAL: it is atomic but survives a power failure only once a
// later durable commit has flushed the write-ahead log, which saves a device
// flush for records that are worthless after a crash anyway.
//
// A durable transaction also writes the small blobs pending in memory, all
// those stored before write was called, so that no record it commits refers
// to a small blob a crash could lose. The blobs are taken once write holds
// the only connection of wdb, so that durable writes take them in turn: none
// can commit while a blob stored before it is being written by another.
func (s *Store) write(ctx context.Context, durable bool, fn func(*sql.Tx) error) error {
	return diskFull(s.dir, s.writeTx(ctx, durable, durable, fn))
}

// writeTx is write, but with the writing of pending blobs chosen by
// withBlobs.
func (s *Store) writeTx(ctx context.Context, durable, withBlobs bool, fn func(*sql.Tx) error) error {
	if s.wdb == nil {
		return fmt.Errorf("%s: %w", s.dir, ErrReadOnly)
	}
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return err
	}
	if !withBlobs {
		return errors.Join(writeConn(ctx, conn, durable, fn), conn.Close())
	}
	blobs := s.inline.take()
	err = writeConn(ctx, conn, durable, func(tx *sql.Tx) error {
		if err := s.writeBlobs(ctx, tx, blobs); err != nil {
			return err
		}
		return fn(tx)
	})
	s.inline.done(blobs, err == nil)
	return errors.Join(err, conn.Close())
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
