// Package exec runs flows. [Run] is the scheduler: it walks a valid graph,
// creates tasks, fans out and joins, applies retries, timeouts and catch,
// and records everything in a store. Tasks run behind the [Executor]
// interface: [Runner] runs them in this process, [Process] in a
// subprocess through the hidden `dagger step` command, the entry point a
// Kubernetes pod uses too. Every executor takes the same [TaskSpec] and
// gives back the same [TaskResult], so the scheduler never knows where a
// task ran.
//
// A task the scheduler starts is always recorded ended, whatever fails
// around it: an executor that panics, returns no result or a result that
// contradicts the graph, a record or blob that cannot be written (a full
// disk), or an OnEvent that panics. Such a fault fails the task, with
// what it printed and set, and stops the run; a record that cannot be
// written at all is ended by the run's end (store.FinishRun). An executor
// that does not return timeoutGrace after its context ends is abandoned,
// so that the run still ends, and what it reports later is dropped.
//
// What a task prints is passed on in batches, by count and by time, each
// in one call to the live log and in one run of OnEvent calls (see
// lineBatch): a line reported alone cost a lock, a reading of the clock
// and a lookup, more than the task spent printing it. A batch is reported
// before any other event of its task, so that a task's lines still come
// before its end.
//
// A wide foreach holds little memory: its tasks are made as they start,
// no more than maxCommitting at once, and its join keeps of each input
// only its step, attempt and the digests of its artifacts; the Runner of
// this process makes the contexts of a join's inputs as the join reads
// them. Records are written by the store in batches, one transaction per
// batch, in which the start and the end of a task are one write.
package exec
