// Package history reads what runs recorded in a store: the runs, their
// steps and tasks, each task's attempts, artifact values and output. It is
// the library under "dagger runs", "dagger inspect" and "dagger logs", for
// programs that embed dagger and want the same answers, in the same words
// and the same JSON, without the command line.
//
// # Reading without writing
//
// [Open] opens a store for reading and, unlike [store.Open], never creates
// one: looking at history must not leave an empty store behind wherever it
// looked. [Load] reads a run and its tasks once; a [Run] is a snapshot, and
// [Run.Reload] reads it again. [Follow] rereads a running run every so
// often, since runs are written by other processes that have no way to
// notify readers, and a [LogReader] hands out each attempt's output once,
// however often it is asked.
//
// # Paths and task IDs
//
// People name what they want to see with a [Path],
// RUN[/STEP[/TASK][/ARTIFACT]], where TASK is a task's foreach index as its
// ID ends: square/3 is task square.3. [TaskID] is the one definition of
// that ID format; the engine names tasks with it too, so that a path and
// the task it names can never disagree.
//
// # Errors
//
// Lookups fail in ways a caller tells apart with errors.Is: a run, step,
// task or artifact that is not there wraps [ErrNotFound] (and one of
// [ErrNoStore], [ErrNoStep], [ErrNoTask] or [ErrNoArtifact] says which),
// and a reference that names several wraps [ErrAmbiguous]. Their messages
// list what there is instead, for people to pick from. Any other error is
// a failure to read the store.
//
// # JSON
//
// The history has one JSON form, whose types ([RunJSON], [RunDetailJSON],
// [StepTasksJSON], [TaskDetailJSON], [LogLine], ...) keep every field
// present, so that tools need not tell a missing field from an empty one.
// An artifact value has a JSON form when JSON can hold it without loss
// ([JSON]); [FormatValue] falls back to Starlark for the others.
package history
