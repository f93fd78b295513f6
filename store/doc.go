// Package store keeps the durable state of the dagger engine on the local
// disk: a content-addressed blob store holding artifacts, task logs and code
// packages, and the metadata of runs, tasks and their attempts in an
// embedded SQLite database.
//
// # Layout
//
// A store is a directory, by default .daggerflow in the project (see
// DefaultDir):
//
//	blobs/ab/cdef...   one file per blob larger than 32 KiB, named after the
//	                   hex SHA-256 of its content: the first two digits name
//	                   a subdirectory, the other 62 the file
//	tmp/               blobs being written; renamed into blobs/ when complete
//	meta.db            the SQLite database (with meta.db-wal and meta.db-shm),
//	                   which also holds the blobs of up to 32 KiB
//	lock               locked by processes while they set the store up
//	reserve            1 MiB kept free for the records of a full disk (below)
//
// # Durability
//
// A small blob is held in memory until the next durable write to the
// database, which stores it: Put does not wait for the disk. A large blob
// appears under blobs/ atomically and complete, even if the writing process
// is killed, but it is flushed to stable storage only by the next flush,
// which flushes every blob file written since the previous one at once: on
// Linux with a single syncfs(2) call, which also flushes whatever else is
// dirty on the file system, elsewhere file by file.
//
// Blobs.Sync flushes the blob files, if any were written, and stores the
// small blobs durably. FinishTasks and CommitTask do both before recording
// tasks as finished, in one transaction that is durable when they return,
// so a finished task never refers to a blob a crash could lose; CreateRun
// and FinishRun store small blobs too. StartTask and CommitTask batch
// concurrent callers, so that many tasks starting or finishing at once
// share one transaction, and one flush to disk, per batch.
//
// Store.Check verifies all of this, as "dagger fsck" does.
//
// Get and Open check that a blob hashes to its name as they read it,
// except a blob file of 1 MiB or more that the process wrote itself, or
// already checked, and that is the same file, of the same size and
// modification time, since: hashing is then what a large read would spend
// most of its time on, for nothing. A writer dates a blob file a second
// back, so that any later write to it changes its time, even within a tick
// of the coarse clock by which file systems date writes. Damage below the
// file system is then noticed by other processes, and by Store.Check.
//
// A write that fails because the disk is full says so, naming the store
// (ErrDiskFull). So that a run a full disk stopped can still be recorded
// as ended, CreateRun keeps the file reserve on the disk, which FinishRun
// deletes when the disk is full; FinishRun also ends the tasks of the run
// that no record ended (a commit that failed), failed or cancelled, so
// that a finished run has no running task.
//
// # Concurrency
//
// A Store is safe for concurrent use, and several processes, such as two
// concurrent "dagger run" commands, may share a store directory. Blobs need
// no coordination: they are immutable, and installed by atomic rename or
// stored by a transaction. A process sees the small blobs of another once
// they are durable. The database is in WAL mode, so that readers never wait
// for writers; writers of different processes take turns, waiting up to 10
// seconds for each other. SQLite was chosen over single-writer key-value
// stores such as bbolt because it allows this sharing between processes,
// and because the metadata is queried in more ways than by key.
//
// # Run IDs
//
// Run IDs are 12 characters, such as "1m89n0g2q0j4", that sort by creation
// time: milliseconds since 1970 followed by random bits, in lowercase
// Crockford base32. Any prefix of an ID that no other ID shares identifies
// the run, and "latest" identifies the most recent run.
package store
