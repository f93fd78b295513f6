package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	urfave "github.com/urfave/cli/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/daggerflow/dagger"
	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/exec"
	"github.com/daggerflow/dagger/kube"
	"github.com/daggerflow/dagger/kubeexec"
	"github.com/daggerflow/dagger/runnerimage"
	"github.com/daggerflow/dagger/store"
)

// maxAdopted bounds the runs of a chain of resumed runs whose pods a
// resumed run adopts.
const maxAdopted = 20

// defaultPods is how many pods a Kubernetes run keeps at once unless told:
// the driver's CPUs say nothing of the cluster's.
const defaultPods = 16

func kubernetesCommand(set *builtins.Set) *urfave.Command {
	return &urfave.Command{
		Name:  "kubernetes",
		Usage: "run flows on a Kubernetes cluster",
		Subcommands: []*urfave.Command{{
			Name:      "run",
			Usage:     "run a flow, each task in a pod",
			ArgsUsage: "FLOW",
			Description: "Run checks the flow file FLOW and its parameter values, then runs it as\n" +
				"dagger run does, but each task in a pod of its own, in the runner image:\n" +
				"--image, or one built from this very executable and pushed to --registry\n" +
				"(else $DAGGER_REGISTRY) when the registry lacks it. The run is recorded in\n" +
				"the local store, and its artifacts, logs and code go to the datastore\n" +
				"--datastore (else $DAGGER_DATASTORE) names, which the pods read and write\n" +
				"with the credentials of the Secret --credentials-secret names. The cluster,\n" +
				"its context and namespace are found as kubectl finds them. dagger resume\n" +
				"continues a Kubernetes run on Kubernetes, with the same settings.",
			Flags: []urfave.Flag{
				&urfave.StringSliceFlag{Name: "param", Aliases: []string{"p"}, KeepSpace: true, Usage: "give a parameter a value, `name=value`; repeat for each"},
				&urfave.StringFlag{Name: "store", Usage: "record the run in `DIR`"},
				&urfave.StringFlag{Name: "datastore", EnvVars: []string{"DAGGER_DATASTORE"}, Usage: "keep the run's artifacts, logs and code at `URL`, which the pods reach: s3://bucket/prefix, gs:// or azblob://"},
				&urfave.StringFlag{Name: "image", Usage: "run the tasks in the runner image `IMG`, whose entrypoint is this dagger"},
				&urfave.StringFlag{Name: "registry", EnvVars: []string{"DAGGER_REGISTRY"}, Usage: "build the runner image from this executable and push it to `REPO`, such as registry.example.com/dagger"},
				&urfave.StringFlag{Name: "kubeconfig", Usage: "the kubeconfig `FILE`; else $KUBECONFIG, else ~/.kube/config"},
				&urfave.StringFlag{Name: "context", Usage: "the kubeconfig `CONTEXT` to use; else its current one"},
				&urfave.StringFlag{Name: "namespace", Aliases: []string{"n"}, EnvVars: []string{"DAGGER_NAMESPACE"}, Usage: "run the pods in `NS`; else the context's namespace, else default"},
				&urfave.StringFlag{Name: "service-account", Usage: "run the pods as `SA`, unless a step names its own; its token is mounted only for steps that name one"},
				&urfave.StringFlag{Name: "credentials-secret", EnvVars: []string{"DAGGER_CREDENTIALS_SECRET"}, Usage: "give each pod the keys of the Secret `NAME` as environment variables: the datastore's credentials"},
				&urfave.StringFlag{Name: "ca-secret", EnvVars: []string{"DAGGER_CA_SECRET"}, Usage: "have each pod trust the CA certificates of key ca.crt of the Secret `NAME`, in place of the built-in roots: for a datastore whose certificate a private CA signed"},
				&urfave.BoolFlag{Name: "keep-failed-pods", Usage: "keep the pods of failed tasks, for kubectl to inspect"},
				&urfave.DurationFlag{Name: "pull-timeout", Value: kubeexec.DefaultPullTimeout, Usage: "fail a task whose image cannot be pulled for `D`"},
				&urfave.DurationFlag{Name: "schedule-timeout", Value: kubeexec.DefaultScheduleTimeout, Usage: "fail a task whose pod no node can take for `D`"},
				&urfave.IntFlag{Name: "max-workers", Value: defaultPods, Usage: "run at most `N` pods at once"},
				allowFlag(),
				&urfave.BoolFlag{Name: "json", Usage: "print the run's events as JSON, one object per line"},
			},
			Action: func(c *urfave.Context) error { return kubernetesRun(c, set) },
		}},
	}
}

// kubeSettings are how a Kubernetes run runs its pods, as the run records
// them for dagger resume.
type kubeSettings struct {
	Kubeconfig        string        `json:"kubeconfig,omitempty"`
	Context           string        `json:"context,omitempty"`
	Namespace         string        `json:"namespace"`
	Image             string        `json:"image,omitempty"`
	Registry          string        `json:"registry,omitempty"`
	ServiceAccount    string        `json:"service_account,omitempty"`
	CredentialsSecret string        `json:"credentials_secret,omitempty"`
	CASecret          string        `json:"ca_secret,omitempty"`
	KeepFailedPods    bool          `json:"keep_failed_pods,omitempty"`
	PullTimeout       time.Duration `json:"pull_timeout_ns,omitempty"`
	ScheduleTimeout   time.Duration `json:"schedule_timeout_ns,omitempty"`
}

// kubernetesKey is the key of a run's recorded executor settings that
// says they are a Kubernetes run's.
const kubernetesKey = "kubernetes"

// record returns the settings as a run records them.
func (k *kubeSettings) record() string {
	data, _ := json.Marshal(map[string]*kubeSettings{kubernetesKey: k}) // plain fields always encode
	return string(data)
}

// recordedKubeSettings returns the settings a run recorded, nil if it was
// not a Kubernetes run.
func recordedKubeSettings(r store.Run) (*kubeSettings, error) {
	if r.Executor == "" {
		return nil, nil
	}
	var rec map[string]*kubeSettings
	if err := json.Unmarshal([]byte(r.Executor), &rec); err != nil {
		return nil, fmt.Errorf("run %s recorded executor settings this dagger cannot read: %w", r.ID, err)
	}
	k := rec[kubernetesKey]
	if k == nil {
		return nil, fmt.Errorf("run %s ran with an executor this dagger does not know: %s", r.ID, r.Executor)
	}
	return k, nil
}

// kubernetesRun is the action of dagger kubernetes run.
func kubernetesRun(c *urfave.Context, set *builtins.Set) error {
	name := c.Command.HelpName
	path, given, err := flowAndParams(c)
	if err != nil {
		return err
	}
	workers := c.Int("max-workers")
	if workers < 1 {
		return &usageError{cmd: name, msg: fmt.Sprintf("--max-workers must be 1 or more, not %d", workers)}
	}
	settings := &kubeSettings{
		Kubeconfig:        c.String("kubeconfig"),
		Context:           c.String("context"),
		Namespace:         c.String("namespace"),
		Image:             c.String("image"),
		Registry:          c.String("registry"),
		ServiceAccount:    c.String("service-account"),
		CredentialsSecret: c.String("credentials-secret"),
		CASecret:          c.String("ca-secret"),
		KeepFailedPods:    c.Bool("keep-failed-pods"),
		PullTimeout:       c.Duration("pull-timeout"),
		ScheduleTimeout:   c.Duration("schedule-timeout"),
	}
	switch {
	case settings.Image != "":
		settings.Registry = "" // --image wins, over $DAGGER_REGISTRY above all
	case settings.Registry == "":
		return &usageError{cmd: name, msg: "no runner image: give --image IMG, or --registry REPO (else $DAGGER_REGISTRY) to build one from this executable"}
	}
	for _, f := range []string{"pull-timeout", "schedule-timeout"} {
		if d := c.Duration(f); d <= 0 {
			return &usageError{cmd: name, msg: fmt.Sprintf("--%s must be more than 0, not %s", f, d)}
		}
	}
	ds := c.String("datastore")
	if err := checkRemoteDatastore(name, ds); err != nil {
		return err
	}
	if err := checkDatastore(c); err != nil {
		return err
	}
	allow, err := grants(c, name)
	if err != nil {
		return err
	}
	opts := dagger.Options{Params: given, MaxWorkers: workers, Datastore: ds, ExecutorSettings: settings.record(), Allow: allow}
	return runFlowFile(c, set, path, opts, func(ctx context.Context) (exec.Executor, func() error, error) {
		e, err := newKubeExecutor(ctx, c, settings, nil)
		if err != nil {
			return nil, nil, err
		}
		return e, e.Close, nil
	})
}

// checkRemoteDatastore checks that url names a datastore that pods can
// reach.
func checkRemoteDatastore(cmd, rawURL string) error {
	if rawURL == "" {
		return &usageError{cmd: cmd, msg: "no datastore: pods keep the run's blobs in one they reach, given by --datastore URL or $DAGGER_DATASTORE, such as s3://bucket/runs"}
	}
	if u, err := url.Parse(rawURL); err == nil && (u.Scheme == "file" || u.Scheme == "store") {
		return &usageError{cmd: cmd, msg: fmt.Sprintf("--datastore %s: pods on other machines cannot reach files of this one: use object storage, such as s3://bucket/runs", rawURL)}
	}
	return nil
}

// newKubeExecutor returns the executor of settings, resolving the
// cluster and namespace as kubectl does, and recording what it resolved
// in settings; with a registry, it builds and pushes the runner image
// first. It adopts the pods of the runs adopt names.
func newKubeExecutor(ctx context.Context, c *urfave.Context, settings *kubeSettings, adopt []string) (*kubeexec.Executor, error) {
	if settings.Kubeconfig != "" {
		abs, err := filepath.Abs(settings.Kubeconfig)
		if err != nil {
			return nil, failed(err)
		}
		settings.Kubeconfig = abs // for a resume from another folder
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = settings.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: settings.Context}
	overrides.Context.Namespace = settings.Namespace
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	rc, err := loader.ClientConfig()
	if err != nil {
		return nil, &exitError{code: exitInvalid, err: fmt.Errorf("finding the cluster: %w", err)}
	}
	if settings.Namespace, _, err = loader.Namespace(); err != nil {
		return nil, &exitError{code: exitInvalid, err: fmt.Errorf("finding the namespace: %w", err)}
	}
	if settings.Context == "" {
		// Recorded, so that a resume after kubectl config use-context
		// goes to the same cluster. In a pod, there is no kubeconfig, and
		// no context.
		if raw, err := loader.RawConfig(); err == nil {
			settings.Context = raw.CurrentContext
		}
	}
	rc.UserAgent = "dagger"
	// A wide foreach creates and deletes pods fast; client-go's defaults,
	// 5 requests a second, would pace it.
	rc.QPS, rc.Burst = 50, 100
	pods, err := kubeexec.NewPods(rc, settings.Namespace)
	if err != nil {
		return nil, failed(err)
	}
	// Asked before the run starts, so that a cluster out of reach, or
	// rights that do not allow the run, cost no work and leave no run.
	if _, err := pods.List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		return nil, &exitError{code: exitInvalid, err: fmt.Errorf("listing the pods of namespace %s at %s: %w", settings.Namespace, rc.Host, err)}
	}
	image := settings.Image
	var nodes map[string]string
	if settings.Registry != "" {
		if image, err = pushRunner(ctx, c, settings.Registry); err != nil {
			return nil, err
		}
		// The image is this executable, which runs on nodes of its system
		// alone: a cluster without such nodes says so as pods no node
		// takes, rather than as pods that fail to start.
		nodes = map[string]string{"kubernetes.io/os": runtime.GOOS, "kubernetes.io/arch": runtime.GOARCH}
	}
	e, err := kubeexec.New(kubeexec.Config{
		Pods: pods,
		Pod: kube.PodOptions{
			Namespace:         settings.Namespace,
			Image:             image,
			ServiceAccount:    settings.ServiceAccount,
			CredentialsSecret: settings.CredentialsSecret,
			CASecret:          settings.CASecret,
			NodeSelector:      nodes,
		},
		Adopt:           adopt,
		KeepFailedPods:  settings.KeepFailedPods,
		PullTimeout:     settings.PullTimeout,
		ScheduleTimeout: settings.ScheduleTimeout,
	})
	if err != nil {
		return nil, failed(err)
	}
	return e, nil
}

// pushRunner builds the runner image from this executable, pushes it to
// repo unless it is there, and returns its reference by digest.
func pushRunner(ctx context.Context, c *urfave.Context, repo string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", failed(fmt.Errorf("finding this executable for the runner image: %w", err))
	}
	im, err := runnerimage.FromExecutable(exe, runtime.GOARCH)
	if err != nil {
		return "", &exitError{code: exitInvalid, err: err}
	}
	start := time.Now()
	ref, err := im.Push(ctx, repo)
	if err != nil {
		return "", failed(fmt.Errorf("pushing the runner image to %s: %w", repo, err))
	}
	if !c.Bool("json") {
		fmt.Fprintf(c.App.ErrWriter, "runner image %s (%s)\n", ref, round(time.Since(start)))
	}
	return ref, nil
}

// resumeOnKubernetes returns the executor that resumes origin on
// Kubernetes, with the settings it ran with, and those settings as the
// new run records them; nil when origin did not run there.
func resumeOnKubernetes(ctx context.Context, c *urfave.Context, st *store.Store, origin store.Run) (*kubeexec.Executor, string, error) {
	settings, err := recordedKubeSettings(origin)
	switch {
	case err != nil:
		return nil, "", &exitError{code: exitInvalid, err: err}
	case settings == nil:
		return nil, "", nil
	case c.IsSet("executor"):
		return nil, "", &usageError{cmd: c.Command.HelpName, msg: fmt.Sprintf("run %s ran on Kubernetes, and its resumption does too: drop --executor", origin.ID)}
	}
	// Pods of the runs before the origin may run the tasks too: a run
	// whose driver died while it followed one of them.
	adopt := []string{origin.ID}
	for r := origin; r.Origin != "" && len(adopt) < maxAdopted; {
		if r, err = st.Run(ctx, r.Origin); err != nil {
			return nil, "", failed(fmt.Errorf("finding the runs that run %s resumes: %w", origin.ID, err))
		}
		adopt = append(adopt, r.ID)
	}
	e, err := newKubeExecutor(ctx, c, settings, adopt)
	if err != nil {
		return nil, "", err
	}
	return e, settings.record(), nil
}
