// Package exec runs flows. [Run] is the scheduler: it walks a valid graph,
// creates tasks, fans out and joins, applies retries, timeouts and catch,
// and records everything in a store. Tasks run behind the [Executor]
// interface: [Runner] runs them in this process, [Process] in a
// subprocess through the hidden `dagger step` command, the entry point a
// Kubernetes pod uses too. Every executor takes the same [TaskSpec] and
// gives back the same [TaskResult], so the scheduler never knows where a
// task ran.
package exec
