package kubeexec

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// Pods is what an Executor asks of the API server, about the pods of one
// namespace: client-go's typed corev1client.PodInterface is one, and
// NewPods makes a lighter one.
type Pods interface {
	Create(ctx context.Context, pod *corev1.Pod, opts metav1.CreateOptions) (*corev1.Pod, error)
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Pod, error)
	Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
	GetLogs(name string, opts *corev1.PodLogOptions) *rest.Request
}

// NewPods returns a client of the pods of namespace on the cluster of
// config. Unlike client-go's typed clients, whose package registers every
// API group of Kubernetes when a program starts, it knows only the core
// group's types: linking it costs a program that does not use it, such as
// dagger running a flow locally, next to nothing at start-up.
func NewPods(config *rest.Config, namespace string) (Pods, error) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	metav1.AddToGroupVersion(scheme, corev1.SchemeGroupVersion)
	c := rest.CopyConfig(config)
	c.APIPath = "/api"
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("a client of %s: %w", config.Host, err)
	}
	return &pods{rc: rc, ns: namespace, params: runtime.NewParameterCodec(scheme)}, nil
}

// pods is the Pods of NewPods.
type pods struct {
	rc     *rest.RESTClient
	ns     string
	params runtime.ParameterCodec
}

func (p *pods) Create(ctx context.Context, pod *corev1.Pod, opts metav1.CreateOptions) (*corev1.Pod, error) {
	out := new(corev1.Pod)
	err := p.rc.Post().Namespace(p.ns).Resource("pods").VersionedParams(&opts, p.params).Body(pod).Do(ctx).Into(out)
	return out, err
}

func (p *pods) Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Pod, error) {
	out := new(corev1.Pod)
	err := p.rc.Get().Namespace(p.ns).Resource("pods").Name(name).VersionedParams(&opts, p.params).Do(ctx).Into(out)
	return out, err
}

func (p *pods) Delete(ctx context.Context, name string, opts metav1.DeleteOptions) error {
	return p.rc.Delete().Namespace(p.ns).Resource("pods").Name(name).Body(&opts).Do(ctx).Error()
}

func (p *pods) List(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error) {
	out := new(corev1.PodList)
	req := p.rc.Get().Namespace(p.ns).Resource("pods").VersionedParams(&opts, p.params)
	if opts.TimeoutSeconds != nil {
		req = req.Timeout(time.Duration(*opts.TimeoutSeconds) * time.Second)
	}
	err := req.Do(ctx).Into(out)
	return out, err
}

func (p *pods) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	req := p.rc.Get().Namespace(p.ns).Resource("pods").VersionedParams(&opts, p.params)
	if opts.TimeoutSeconds != nil {
		req = req.Timeout(time.Duration(*opts.TimeoutSeconds) * time.Second)
	}
	return req.Watch(ctx)
}

func (p *pods) GetLogs(name string, opts *corev1.PodLogOptions) *rest.Request {
	return p.rc.Get().Namespace(p.ns).Resource("pods").Name(name).SubResource("log").VersionedParams(opts, p.params)
}
