package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ProblemKind classifies the problems Check finds.
type ProblemKind string

// The kinds of problems.
const (
	// ProblemCorruptBlob is a blob, in a file or in the database, whose
	// content does not hash to its name, or whose file cannot be read.
	ProblemCorruptBlob ProblemKind = "corrupt blob"
	// ProblemStrayFile is an entry under blobs/ that is neither a blob
	// file nor a fan-out directory.
	ProblemStrayFile ProblemKind = "stray file"
	// ProblemMissingBlob is a record that refers to a blob the store does
	// not have.
	ProblemMissingBlob ProblemKind = "missing blob"
	// ProblemDatabase is damage to the database file found by SQLite's
	// integrity check.
	ProblemDatabase ProblemKind = "damaged database"
	// ProblemDanglingRecord is a record that refers to a record that does
	// not exist, such as the attempt of an unknown task.
	ProblemDanglingRecord ProblemKind = "dangling record"
)

// Problem is an inconsistency in a store, found by Check.
type Problem struct {
	Kind ProblemKind
	// Where locates the problem: for a file, its path relative to the
	// store directory, with slashes, such as "blobs/ab/cdef..."; for
	// records, "meta.db" followed by what names them, such as
	// "meta.db: run 1m89n0g2q0j4 task train.3".
	Where string
	// Detail says what is wrong.
	Detail string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s: %s: %s", p.Where, p.Kind, p.Detail)
}

// Check verifies the consistency of the store, as "dagger fsck" does, and
// returns the problems it finds, sorted by Where. It checks that:
//
//   - the content of every blob file hashes to its name, and nothing else
//     is under blobs/;
//   - the content of every blob in the database hashes to its key;
//   - every blob that a record needs exists, inline or as a file: the
//     artifacts, logs and foreach elements of succeeded and reused tasks,
//     the logs of attempts, and the code and setup logs of runs;
//   - SQLite's integrity check passes, and every record that refers to
//     another, such as an attempt to its task, finds it.
//
// Check reads every blob, streaming files, so it takes about as long as
// reading the store. It may run while other processes use the store: the
// records and the database blobs it checks are a consistent snapshot, and a
// blob file that a record needs was in place before the record was written.
// The error reports a failure to check, such as an unreadable directory or
// database, not a problem found.
func (s *Store) Check(ctx context.Context) ([]Problem, error) {
	var problems []Problem
	for _, check := range []func(context.Context) ([]Problem, error){
		s.checkDatabase,
		s.checkRecords,
		s.checkFiles,
	} {
		ps, err := check(ctx)
		if err != nil {
			return nil, fmt.Errorf("store: check %s: %w", s.dir, err)
		}
		problems = append(problems, ps...)
	}
	slices.SortStableFunc(problems, func(a, b Problem) int { return cmp.Compare(a.Where, b.Where) })
	return problems, nil
}

// checkDatabase runs SQLite's checks of the database file and of foreign
// keys.
func (s *Store) checkDatabase(ctx context.Context) ([]Problem, error) {
	var problems []Problem
	rows, err := s.rdb.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var msg string
		if err := rows.Scan(&msg); err != nil {
			return nil, fmt.Errorf("integrity check: %w", err)
		}
		if msg != "ok" {
			problems = append(problems, Problem{ProblemDatabase, "meta.db", msg})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}

	// The violations are grouped by table, as tables without rowid, whose
	// rows foreign_key_check cannot identify, would give many identical
	// reports.
	type group struct{ table, parent string }
	var (
		groups []group
		rowids = make(map[group][]int64)
		counts = make(map[group]int)
	)
	rows, err = s.rdb.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return nil, fmt.Errorf("foreign key check: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			g     group
			rowid sql.NullInt64
			fkid  int
		)
		if err := rows.Scan(&g.table, &rowid, &g.parent, &fkid); err != nil {
			return nil, fmt.Errorf("foreign key check: %w", err)
		}
		if counts[g] == 0 {
			groups = append(groups, g)
		}
		counts[g]++
		if rowid.Valid {
			rowids[g] = append(rowids[g], rowid.Int64)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("foreign key check: %w", err)
	}
	for _, g := range groups {
		detail := fmt.Sprintf("%d rows refer to missing %s records", counts[g], g.parent)
		if counts[g] == 1 {
			detail = fmt.Sprintf("a row refers to a missing %s record", g.parent)
		}
		if ids := rowids[g]; len(ids) > 0 {
			const maxListed = 10
			var b strings.Builder
			for i, id := range ids[:min(len(ids), maxListed)] {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(strconv.FormatInt(id, 10))
			}
			if len(ids) > maxListed {
				b.WriteString(", ...")
			}
			detail += " (rowid " + b.String() + ")"
		}
		problems = append(problems, Problem{ProblemDanglingRecord, "meta.db: table " + g.table, detail})
	}
	return problems, nil
}

// referencesSQL lists the blobs records need, with what needs them, and
// keeps those that are not in the database. Its parameters are the statuses
// of tasks whose blobs are needed. The blobs of a run kept in a datastore
// are not this store's to check.
const referencesSQL = `
SELECT run_id, task_id, attempt, what, hash FROM (
	SELECT t.run_id, t.id AS task_id, NULL AS attempt, 'artifact ' || a.name AS what, a.hash
		FROM artifacts a JOIN tasks t ON t.run_id = a.run_id AND t.id = a.task_id
		WHERE t.status IN (?1, ?2)
	UNION ALL
	SELECT run_id, id, NULL, 'logs', logs FROM tasks WHERE status IN (?1, ?2) AND logs != ''
	UNION ALL
	SELECT run_id, id, NULL, 'foreach elements', foreach FROM tasks WHERE status IN (?1, ?2) AND foreach IS NOT NULL
	UNION ALL
	SELECT run_id, task_id, n, 'logs', logs FROM attempts WHERE logs != ''
	UNION ALL
	SELECT id, NULL, NULL, 'code', code_hash FROM runs WHERE code_hash != ''
	UNION ALL
	SELECT id, NULL, NULL, 'setup logs', setup_logs FROM runs WHERE setup_logs != ''
) WHERE hash NOT IN (SELECT hash FROM blobs)
	AND run_id IN (SELECT id FROM runs WHERE datastore = '')
ORDER BY run_id, task_id, attempt, what`

// checkRecords checks the blobs in the database, and that the blobs records
// need exist, in one snapshot of the database.
func (s *Store) checkRecords(ctx context.Context) ([]Problem, error) {
	var problems []Problem
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, "SELECT hash, data FROM blobs")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				h    string
				data []byte
			)
			if err := rows.Scan(&h, &data); err != nil {
				return err
			}
			where := "meta.db: blob " + h
			if err := checkHash(h); err != nil {
				problems = append(problems, Problem{ProblemCorruptBlob, where, err.Error()})
			} else if got := HashOf(sha256.Sum256(data)); got != Hash(h) {
				problems = append(problems, Problem{ProblemCorruptBlob, where, "content hashes to " + string(got)})
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}

		// What the database lacks must be in a file. A file that a record
		// needs was in place before the record was committed, so before
		// this snapshot.
		rows, err = tx.QueryContext(ctx, referencesSQL, TaskSucceeded, TaskReused)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				runID, what, h string
				taskID         sql.NullString
				attempt        sql.NullInt64
			)
			if err := rows.Scan(&runID, &taskID, &attempt, &what, &h); err != nil {
				return err
			}
			where := "meta.db: run " + runID
			if taskID.Valid {
				where += " task " + taskID.String
			}
			if attempt.Valid {
				where += " attempt " + strconv.FormatInt(attempt.Int64, 10)
			}
			if err := checkHash(h); err != nil {
				problems = append(problems, Problem{ProblemMissingBlob, where, what + ": " + err.Error()})
				continue
			}
			info, err := os.Lstat(s.blobs.path(Hash(h)))
			switch {
			case errors.Is(err, fs.ErrNotExist):
				problems = append(problems, Problem{ProblemMissingBlob, where, what + ": blob " + h + " does not exist"})
			case err != nil:
				return err
			case !info.Mode().IsRegular():
				problems = append(problems, Problem{ProblemMissingBlob, where, what + ": blob " + h + " is not a regular file"})
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("checking records: %w", err)
	}
	return problems, nil
}

// checkFiles checks the entries under blobs/, hashing blob files on as many
// goroutines as there are processors.
func (s *Store) checkFiles(ctx context.Context) ([]Problem, error) {
	var (
		mu       sync.Mutex
		problems []Problem
	)
	report := func(kind ProblemKind, rel, detail string) {
		mu.Lock()
		problems = append(problems, Problem{kind, path.Join("blobs", rel), detail})
		mu.Unlock()
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	files := make(chan string) // paths relative to blobs/, with slashes
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			for rel := range files {
				if detail := checkBlobFile(ctx, s.blobs.root, rel, buf); detail != "" {
					report(ProblemCorruptBlob, rel, detail)
				}
			}
		})
	}
	err := walkBlobs(ctx, s.blobs.root, files, report)
	close(files)
	wg.Wait()
	if err == nil {
		err = ctx.Err() // a worker may have stopped early
	}
	if err != nil {
		return nil, fmt.Errorf("checking blob files: %w", err)
	}
	return problems, nil
}

// walkBlobs sends the blob files under root to files, and reports the
// other entries as stray.
func walkBlobs(ctx context.Context, root string, files chan<- string, report func(kind ProblemKind, rel, detail string)) error {
	dirs, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !d.IsDir() || !isHex(d.Name(), 2) {
			report(ProblemStrayFile, d.Name(), "not a fan-out directory of two hex digits")
			continue
		}
		entries, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return err
		}
		for _, e := range entries {
			rel := d.Name() + "/" + e.Name()
			switch {
			case !isHex(e.Name(), 2*sha256.Size-2):
				report(ProblemStrayFile, rel, "not named after a blob hash")
			case !e.Type().IsRegular():
				report(ProblemStrayFile, rel, "not a regular file")
			default:
				select {
				case files <- rel:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	}
	return nil
}

// checkBlobFile reads the blob file rel under root, and describes what is
// wrong with it, or returns "" if nothing is.
func checkBlobFile(ctx context.Context, root, rel string, buf []byte) string {
	f, err := os.Open(filepath.Join(root, filepath.FromSlash(rel)))
	if errors.Is(err, fs.ErrNotExist) {
		return "" // removed meanwhile
	}
	if err != nil {
		return err.Error()
	}
	defer f.Close() // read-only, so closing cannot lose data
	hw := sha256.New()
	if _, err := io.CopyBuffer(hw, ctxReader{ctx, f}, buf); err != nil {
		if ctx.Err() != nil {
			return "" // the walk reports it
		}
		return "reading: " + err.Error()
	}
	var sum [sha256.Size]byte
	want := Hash(hashPrefix + strings.ReplaceAll(rel, "/", ""))
	if got := HashOf([sha256.Size]byte(hw.Sum(sum[:0]))); got != want {
		return "content hashes to " + string(got)
	}
	return ""
}

// isHex reports whether s is n lowercase hexadecimal digits.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Repair removes the corrupt blobs of problems, as Check found them, so
// that the next put of their content, by a run or by dagger resume
// --from, writes them again: a corrupt blob kept would fail every run
// that reads it. A blob file is checked again just before it is removed,
// so that one a put has since repaired is kept. It returns where each
// blob it removed was.
func (s *Store) Repair(ctx context.Context, problems []Problem) ([]string, error) {
	var removed []string
	buf := make([]byte, 1<<20)
	for _, p := range problems {
		if p.Kind != ProblemCorruptBlob {
			continue
		}
		if rel, ok := strings.CutPrefix(p.Where, "blobs/"); ok {
			if checkBlobFile(ctx, s.blobs.root, rel, buf) == "" {
				continue
			}
			if err := os.Remove(filepath.Join(s.blobs.root, filepath.FromSlash(rel))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return removed, fmt.Errorf("store: repair: %w", err)
			}
			removed = append(removed, p.Where)
			continue
		}
		if h, ok := strings.CutPrefix(p.Where, "meta.db: blob "); ok {
			err := s.write(ctx, true, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, "DELETE FROM blobs WHERE hash = ?", h)
				return err
			})
			if err != nil {
				return removed, fmt.Errorf("store: repair: %w", err)
			}
			removed = append(removed, p.Where)
		}
	}
	return removed, nil
}
