// Package kube describes, as Kubernetes objects, how dagger runs tasks on a
// cluster: [Pod] turns the TaskSpec of one task attempt into the bare Pod
// that runs it with `dagger step`. It is pure: it talks to no API server,
// and it uses only the types of k8s.io/api/core/v1 and k8s.io/apimachinery,
// not client-go, so that linking it costs a program little at start-up.
//
// # Names
//
// A pod is named after its run, task and attempt, such as
// "1m89nzs2917d-square-3-1-gdr8n24vnth4": the readable part is lowercased,
// every character a DNS label cannot hold (the dots and underscores of task
// IDs among them) becomes "-", and it is cut so that the name fits in 63
// characters. The last 12 characters are a hash (60 bits of SHA-256) of the
// exact run ID, task ID and attempt, so two attempts never share a name,
// even when cutting or lowercasing makes their readable parts equal, and
// the same attempt always gets the same name: creating it twice fails
// rather than run the task twice.
// A pod that the platform lost (evicted, deleted) is replaced by another
// for the same attempt, whose name adds "-r" and the retry's number, as
// PodOptions.Retry says.
//
// # Labels and annotations
//
// Every pod has the labels dagger.dev/run, dagger.dev/step, dagger.dev/task
// and dagger.dev/attempt, for a driver to select and watch the pods of a
// run. A value that is not a valid label value (more than 63 characters, or
// a step name that starts with "_") is cut and ends in a hash of the exact
// value, as [LabelValue] says; the exact task ID is always in the
// annotation dagger.dev/task-id. Labels given in [PodOptions] are added,
// but cannot replace these.
//
// # How the spec reaches the pod
//
// The TaskSpec, as JSON, is the value of the environment variable
// DAGGER_TASK_SPEC of the step's container, from which `dagger step` reads
// it in place of its standard input, which a pod does not have. An
// environment variable needs no volume, so the test node agent runs the
// pod as it is; but Linux refuses to start a process with a single
// environment string over 128 KiB (MAX_ARG_STRLEN), so Pod refuses a spec
// larger than [MaxSpecSize] with an error that says so, rather than leave a
// container that cannot start, wrapping [ErrSpecTooLarge]. Specs are
// small, since blobs travel as references, except at the join of a wide
// foreach, whose spec lists every input task: the executor then saves the
// spec in the datastore (exec.SaveSpec) and gives Pod a short spec whose
// Ref names that blob, which `dagger step` reads in its place.
//
// # The result
//
// `dagger step --result-ref` saves the TaskResult in the datastore and
// writes only a reference to it, with a one-line summary, to
// /dev/termination-log, which the kubelet turns into the container's
// termination message, for the driver to read on the pod's watch events:
// no request per task. A kubelet keeps only 4 096 bytes of it, which the
// reference never exceeds; exec.FetchResult reads the TaskResult back.
// The termination message policy is FallbackToLogsOnError, so that a
// runner that dies before writing anything leaves its last log lines
// instead.
//
// # Images
//
// The step's container runs the runner image of [PodOptions], whose
// entrypoint is the dagger executable at /dagger. A step that names an
// image of its own runs there instead, and that image need not contain
// dagger: an init container of the runner image runs `/dagger copy-runner
// /dagger-bin/dagger`, a hidden command of the CLI that copies its own
// executable to the path given, into an emptyDir volume that the step's
// container mounts read-only at /dagger-bin, and the step's container runs
// /dagger-bin/dagger. The executable is static, so it runs in any Linux
// image of the nodes' architecture.
//
// # Security
//
// Pods meet the restricted Pod Security Standard, so that they are
// admitted in namespaces that enforce it: they run as user and group 65532,
// the runner image's, and not as root, with the runtime's default seccomp
// profile, no privilege escalation and no capabilities. Their root file
// system is read-only; an emptyDir volume at /tmp, where TMPDIR and HOME
// point, is their only writable place. The service account token is
// mounted only when the step names a service account, since only then does
// it mean to use the API. Credentials of the datastore come from the Secret
// that [PodOptions] names, each of its keys an environment variable through
// envFrom, so they appear in neither the TaskSpec nor the pod.
//
// # CA certificates
//
// The runner image holds the dagger executable alone, so no CA
// certificates: dagger then trusts Mozilla's roots, built in, which do not
// include the private CA that may sign an in-house datastore's certificate
// (MinIO, Ceph, an S3 proxy). A pod given a [PodOptions.CASecret]
// mounts that Secret read-only at /etc/dagger/ca, a secret volume that the
// restricted standard allows, and its step container gets
// SSL_CERT_FILE=/etc/dagger/ca/ca.crt, which Go, OpenSSL and most TLS
// clients read in place of the system's roots. Only the key ca.crt is
// mounted, the name that cert-manager and kubectl give a CA's certificate,
// so that a Secret that also holds a private key does not hand it to
// tasks. The file replaces the roots rather than add to them: to reach
// public endpoints too, it must hold their roots as well. (The AWS SDK
// would read AWS_CA_BUNDLE instead, were the credentials' Secret to set
// it.) The init container that copies dagger into a step's own image
// reaches no network and gets neither.
//
// # Resources
//
// A step's cpu and memory are both the requests and the limits of its
// container: the scheduler then reserves what the task may use, and a task
// that has both gets the Guaranteed class, the last to be evicted. Its gpu
// count is a limit of nvidia.com/gpu, the resource of NVIDIA's device
// plugin. Its secrets are Secrets each key of which becomes an environment
// variable (envFrom), after those of the datastore's credentials, for the
// step to read with env.get. Its env becomes environment variables, sorted by name; it may
// replace TMPDIR, HOME and SSL_CERT_FILE, but not DAGGER_TASK_SPEC. Its
// timeout, plus ten minutes, becomes the pod's activeDeadlineSeconds,
// rounded up to a whole second: the runner stops the task at its timeout,
// as a local run does, the driver deletes the pod of a task that runs on
// past it, and the deadline stops the pod even when neither can. It counts
// from the pod's start on a node, image pulls included, hence the ten
// minutes.
package kube
