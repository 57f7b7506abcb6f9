package main

import (
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Doc is one object of a rendered kustomization, as YAML.
type Doc struct {
	// ID names it in messages: Kind/name.
	ID   string
	YAML []byte
}

// Render builds the kustomization in dir in process, with the kustomize
// library kubectl 1.32 embeds (kustomize v5.5.0: api v0.18.0), and the
// default options `kubectl apply -k` uses (files only from within the
// kustomization's root, no plugins).
func Render(dir string) ([]Doc, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var docs []Doc
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %s/%s: %w", dir, r.GetKind(), r.GetName(), err)
		}
		docs = append(docs, Doc{ID: r.GetKind() + "/" + r.GetName(), YAML: y})
	}
	return docs, nil
}

// scheme knows the API groups the manifests may use, at the versions a
// Kubernetes 1.32 API server serves: anything else is refused.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, autoscalingv2.AddToScheme,
		policyv1.AddToScheme, networkingv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strict decodes into the typed objects of k8s.io/api the way the API
// server's strict field validation does: an unknown or duplicated field, a
// field in the wrong case or a value of the wrong type is an error.
var strict = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()

// Set is a rendered kustomization, decoded.
type Set struct {
	Namespaces      []*corev1.Namespace
	ServiceAccounts []*corev1.ServiceAccount
	ConfigMaps      []*corev1.ConfigMap
	Secrets         []*corev1.Secret
	PVCs            []*corev1.PersistentVolumeClaim
	Services        []*corev1.Service
	Deployments     []*appsv1.Deployment
	HPAs            []*autoscalingv2.HorizontalPodAutoscaler
	PDBs            []*policyv1.PodDisruptionBudget
	NetPols         []*networkingv1.NetworkPolicy
}

// Decode decodes every document strictly into its k8s.io/api type. It
// returns the objects that decoded and a problem for each that did not.
func Decode(docs []Doc) (*Set, []string) {
	s := &Set{}
	var problems []string
	for _, d := range docs {
		obj, gvk, err := strict.Decode(d.YAML, nil, nil)
		if err != nil {
			msg := err.Error()
			if runtime.IsNotRegisteredError(err) {
				msg = "not a kind the checker knows (core/v1, apps/v1, autoscaling/v2, policy/v1, networking.k8s.io/v1): " + msg
			}
			problems = append(problems, fmt.Sprintf("%s: %s", d.ID, msg))
			continue
		}
		switch o := obj.(type) {
		case *corev1.Namespace:
			s.Namespaces = append(s.Namespaces, o)
		case *corev1.ServiceAccount:
			s.ServiceAccounts = append(s.ServiceAccounts, o)
		case *corev1.ConfigMap:
			s.ConfigMaps = append(s.ConfigMaps, o)
		case *corev1.Secret:
			s.Secrets = append(s.Secrets, o)
		case *corev1.PersistentVolumeClaim:
			s.PVCs = append(s.PVCs, o)
		case *corev1.Service:
			s.Services = append(s.Services, o)
		case *appsv1.Deployment:
			s.Deployments = append(s.Deployments, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			s.HPAs = append(s.HPAs, o)
		case *policyv1.PodDisruptionBudget:
			s.PDBs = append(s.PDBs, o)
		case *networkingv1.NetworkPolicy:
			s.NetPols = append(s.NetPols, o)
		default:
			problems = append(problems, fmt.Sprintf("%s: %s is not a kind the relay's manifests use", d.ID, gvk))
		}
	}
	return s, problems
}

// Kinds lists the kinds of the set with their counts, for the summary line.
func (s *Set) Kinds() string {
	counts := map[string]int{
		"Namespace": len(s.Namespaces), "ServiceAccount": len(s.ServiceAccounts),
		"ConfigMap": len(s.ConfigMaps), "Secret": len(s.Secrets),
		"PersistentVolumeClaim": len(s.PVCs), "Service": len(s.Services),
		"Deployment": len(s.Deployments), "HorizontalPodAutoscaler": len(s.HPAs),
		"PodDisruptionBudget": len(s.PDBs), "NetworkPolicy": len(s.NetPols),
	}
	var out []string
	for k, n := range counts {
		if n > 0 {
			out = append(out, fmt.Sprintf("%d %s", n, k))
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}
