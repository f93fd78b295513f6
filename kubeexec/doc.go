// Package kubeexec is the executor of `dagger kubernetes run`: it runs each
// task attempt in a bare pod that kube.Pod describes, the runner image's
// `dagger step`, and follows the pods of a run with one list and one watch
// filtered by the run's label, never by polling.
//
// # Requests
//
// A task attempt costs the API server three requests: the pod's creation,
// the stream of its output through pods/log, and its deletion. Its result
// comes on the watch: the runner saves the TaskResult in the run's
// datastore and writes a short reference to it as its termination
// message, which exec.FetchResult reads back.
//
// # Failures
//
// A task fails, and its step's retries apply, when its runner reports a
// failure, exits without a result (with its exit code and last line of
// output), is killed at its memory limit, runs past its pod's deadline, or
// when its pod cannot start: an image that cannot be pulled within
// Config.PullTimeout, a pod unschedulable for Config.ScheduleTimeout, an
// init container that failed. A pod the platform loses (evicted, deleted
// by someone else, failed before its container ran) is not the task's
// failure: the attempt gets another pod, up to Config.PlatformRetries
// more. While a pod waits, the executor says why, from its conditions and
// container states, through exec.ReportWaiting.
//
// # Cancellation and adoption
//
// A cancelled task deletes its pod. Pods are named after their run, task,
// attempt and retry, so a driver that was stopped and started again on the
// same run finds its pods rather than create them twice; a run that resumes
// one whose driver died adopts, through Config.Adopt, the pods of its
// origin that still run, or that finished unseen, when their task spec is
// the task's own.
package kubeexec
