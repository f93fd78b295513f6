package store

import (
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// checkClean fails the test if Check finds problems in s.
func checkClean(t testing.TB, s *Store) {
	t.Helper()
	problems, err := s.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("Check: %v", p)
	}
}

// checkFixture is a store with records of every kind that refer to blobs,
// inline and in files.
type checkFixture struct {
	dir           string
	s             *Store
	run           string
	small, large  Hash // artifacts of task "ok"
	logs, foreach Hash // of task "ok"
	attemptLogs   Hash // of attempt 1 of task "ok"
	code          Hash // of the run
}

func newCheckFixture(t *testing.T) *checkFixture {
	t.Helper()
	f := &checkFixture{dir: t.TempDir()}
	f.s = openStoreAt(t, f.dir)
	ctx := t.Context()
	put := func(data []byte) Hash {
		t.Helper()
		h, err := f.s.Blobs().Put(ctx, data)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	f.code = put([]byte("code"))
	r, err := f.s.CreateRun(ctx, Run{Flow: "check", CodeHash: f.code})
	if err != nil {
		t.Fatal(err)
	}
	f.run = r.ID
	f.small = put([]byte("small artifact"))
	f.large = put(randomBytes(1, inlineMax+100))
	f.logs = put([]byte("task logs"))
	f.foreach = put([]byte("a\nb"))
	f.attemptLogs = put([]byte("attempt logs"))
	ok := Task{
		RunID: f.run, ID: "ok", Step: "s", Status: TaskSucceeded, Attempt: 2, ForeachLen: 2,
		Foreach: f.foreach, Logs: f.logs, Artifacts: map[string]Hash{"small": f.small, "large": f.large},
	}
	attempt := Attempt{RunID: f.run, TaskID: "ok", N: 1, Status: TaskFailed, Logs: f.attemptLogs}
	if err := f.s.FinishTasks(ctx, []Task{ok}, []Attempt{attempt}); err != nil {
		t.Fatal(err)
	}
	return f
}

// exec runs statements on the database of f, with foreign keys off.
func (f *checkFixture) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", dsn(filepath.Join(f.dir, "meta.db"), true))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "PRAGMA foreign_keys = OFF"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(t.Context(), query, args...); err != nil {
		t.Fatal(err)
	}
}

// blobPath returns the path of the file of blob h relative to the store.
func blobPath(h Hash) string {
	return "blobs/" + h.Digest()[:2] + "/" + h.Digest()[2:]
}

func TestCheck(t *testing.T) {
	missing := sumOf([]byte("never stored"))
	tests := []struct {
		name   string
		damage func(t *testing.T, f *checkFixture)
		// want has, in Detail, a part of the detail of the problem.
		want func(f *checkFixture) []Problem
	}{
		{
			name:   "clean",
			damage: func(*testing.T, *checkFixture) {},
			want:   func(*checkFixture) []Problem { return nil },
		},
		{
			name: "corrupt blob file",
			damage: func(t *testing.T, f *checkFixture) {
				corrupt(t, f.s, f.large, func(b []byte) []byte { b[10] ^= 1; return b })
			},
			want: func(f *checkFixture) []Problem {
				return []Problem{{ProblemCorruptBlob, blobPath(f.large), "content hashes to sha256:"}}
			},
		},
		{
			name: "truncated and unreadable blob files",
			damage: func(t *testing.T, f *checkFixture) {
				corrupt(t, f.s, f.large, func(b []byte) []byte { return b[:1] })
				// A directory in place of a file fails reading, and is
				// not a regular file.
				p := filepath.Join(f.dir, filepath.FromSlash(blobPath(missing)))
				if err := os.MkdirAll(p, 0o777); err != nil {
					t.Fatal(err)
				}
			},
			want: func(f *checkFixture) []Problem {
				return []Problem{
					{ProblemCorruptBlob, blobPath(f.large), "content hashes to"},
					{ProblemStrayFile, blobPath(missing), "not a regular file"},
				}
			},
		},
		{
			name: "stray files",
			damage: func(t *testing.T, f *checkFixture) {
				for _, p := range []string{"blobs/README", "blobs/ab/short", "blobs/AB/" + strings.Repeat("0", 62), "blobs/zz/x"} {
					p = filepath.Join(f.dir, filepath.FromSlash(p))
					if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, nil, 0o666); err != nil {
						t.Fatal(err)
					}
				}
			},
			want: func(f *checkFixture) []Problem {
				return []Problem{
					{ProblemStrayFile, "blobs/AB", "not a fan-out directory"},
					{ProblemStrayFile, "blobs/README", "not a fan-out directory"},
					{ProblemStrayFile, "blobs/ab/short", "not named after a blob hash"},
					{ProblemStrayFile, "blobs/zz", "not a fan-out directory"},
				}
			},
		},
		{
			name: "corrupt inline blob",
			damage: func(t *testing.T, f *checkFixture) {
				corruptInline(t, f.s, f.small, []byte("small artifacT"))
			},
			want: func(f *checkFixture) []Problem {
				return []Problem{{ProblemCorruptBlob, "meta.db: blob " + string(f.small), "content hashes to sha256:"}}
			},
		},
		{
			name: "inline blob with invalid hash",
			damage: func(t *testing.T, f *checkFixture) {
				f.exec(t, "INSERT INTO blobs (hash, data) VALUES ('sha256:xyz', x'00')")
			},
			want: func(f *checkFixture) []Problem {
				return []Problem{{ProblemCorruptBlob, "meta.db: blob sha256:xyz", "invalid hash"}}
			},
		},
		{
			name: "missing blobs",
			damage: func(t *testing.T, f *checkFixture) {
				for _, h := range []Hash{f.small, f.logs, f.foreach, f.attemptLogs, f.code} {
					f.exec(t, "DELETE FROM blobs WHERE hash = ?", h)
				}
				if err := os.Remove(filepath.Join(f.dir, filepath.FromSlash(blobPath(f.large)))); err != nil {
					t.Fatal(err)
				}
			},
			want: func(f *checkFixture) []Problem {
				task := "meta.db: run " + f.run + " task ok"
				return []Problem{
					{ProblemMissingBlob, "meta.db: run " + f.run, "code: blob " + string(f.code) + " does not exist"},
					{ProblemMissingBlob, task, "artifact large: blob " + string(f.large)},
					{ProblemMissingBlob, task, "artifact small: blob " + string(f.small)},
					{ProblemMissingBlob, task, "foreach elements: blob " + string(f.foreach)},
					{ProblemMissingBlob, task, "logs: blob " + string(f.logs)},
					{ProblemMissingBlob, task + " attempt 1", "logs: blob " + string(f.attemptLogs)},
				}
			},
		},
		{
			name: "blobs of unfinished tasks are not needed",
			damage: func(t *testing.T, f *checkFixture) {
				for _, status := range []TaskStatus{TaskFailed, TaskCancelled, TaskRunning} {
					f.exec(t, `INSERT INTO tasks (run_id, id, step, status, attempt, foreach_len, foreach, logs, error, origin)
						VALUES (?, ?, 's', ?, 1, 0, ?, ?, '', '')`, f.run, status, status, missing, missing)
					f.exec(t, "INSERT INTO artifacts VALUES (?, ?, 'x', ?)", f.run, status, missing)
				}
			},
			want: func(f *checkFixture) []Problem { return nil },
		},
		{
			name: "invalid hash in a record",
			damage: func(t *testing.T, f *checkFixture) {
				f.exec(t, "UPDATE artifacts SET hash = 'md5:0' WHERE name = 'small'")
			},
			want: func(f *checkFixture) []Problem {
				return []Problem{{ProblemMissingBlob, "meta.db: run " + f.run + " task ok", `artifact small: invalid hash "md5:0"`}}
			},
		},
		{
			name: "dangling records",
			damage: func(t *testing.T, f *checkFixture) {
				f.exec(t, "DELETE FROM tasks WHERE id = 'ok'")
				f.exec(t, `INSERT INTO tasks (run_id, id, step, status, attempt, foreach_len, logs, error, origin)
					VALUES ('0000000000zz', 'orphan', 's', 'succeeded', 1, 0, '', '', '')`)
			},
			want: func(f *checkFixture) []Problem {
				return []Problem{
					{ProblemDanglingRecord, "meta.db: table artifacts", "2 rows refer to missing tasks records"},
					{ProblemDanglingRecord, "meta.db: table attempts", "a row refers to a missing tasks record"},
					{ProblemDanglingRecord, "meta.db: table tasks", "a row refers to a missing runs record (rowid "},
				}
			},
		},
		{
			name: "damaged database",
			damage: func(t *testing.T, f *checkFixture) {
				// An index whose definition no longer matches its
				// entries.
				f.exec(t, `PRAGMA writable_schema = ON;
					UPDATE sqlite_schema SET sql = 'CREATE INDEX runs_by_flow ON runs (flow_path, id)' WHERE name = 'runs_by_flow';`)
			},
			want: func(f *checkFixture) []Problem {
				return []Problem{{ProblemDatabase, "meta.db", "runs_by_flow"}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCheckFixture(t)
			tt.damage(t, f)
			// A store opened afresh sees the damage done behind its back.
			s := openStoreAt(t, f.dir)
			got, err := s.Check(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want(f)
			slices.SortStableFunc(want, func(a, b Problem) int { return strings.Compare(a.Where, b.Where) })
			// Details are matched in part: they hold hashes.
			for i := range got {
				if i < len(want) && got[i].Kind == want[i].Kind && strings.Contains(got[i].Detail, want[i].Detail) {
					got[i].Detail = want[i].Detail
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Check mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProblemString(t *testing.T) {
	p := Problem{ProblemStrayFile, "blobs/README", "not a fan-out directory of two hex digits"}
	if got, want := p.String(), "blobs/README: stray file: not a fan-out directory of two hex digits"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}
