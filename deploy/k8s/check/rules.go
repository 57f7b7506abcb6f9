package main

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The relay's fixed facts the manifests must agree with.
const (
	readyPath       = "/ready"  // readiness: store reachable, not shutting down
	healthPath      = "/health" // liveness
	connectionsName = "switchyard_gateway_connections"
	containerName   = "switchyard"
	// defaultGrace is what Kubernetes uses when the pod sets none.
	defaultGrace = 30
)

// Options are what the rules need besides the objects.
type Options struct {
	// Validate runs `switchyard validate`.
	Validate Validator
	// Headroom is how long the relay's shutdown may take after the drain
	// (StopHeadroom).
	Headroom time.Duration
	// Adapter is the prometheus-adapter configuration the HPA's Pods
	// metrics must be served by, and its name for messages.
	Adapter     *AdapterConfig
	AdapterName string
	// Docs is the "Kubernetes" section of deploy/README.md: every Secret
	// the manifests need and do not create must be named there.
	Docs string
	// MonitoringNamespace may reach the admin port (Prometheus).
	MonitoringNamespace string
}

// checker collects the problems of one rendered kustomization.
type checker struct {
	s        *Set
	o        Options
	problems []string

	dep       *appsv1.Deployment
	pod       *corev1.PodSpec
	c         *corev1.Container
	relay     *Relay
	gwPort    int32
	adminPort int32
}

func (k *checker) add(where, format string, args ...any) {
	k.problems = append(k.problems, where+": "+fmt.Sprintf(format, args...))
}

// Check applies the rules strict decoding cannot to a decoded set.
func Check(ctx context.Context, s *Set, o Options) []string {
	k := &checker{s: s, o: o}
	if len(s.Deployments) != 1 {
		k.add("Deployment", "want exactly one (the relay), got %d", len(s.Deployments))
		return k.problems
	}
	k.dep = s.Deployments[0]
	k.pod = &k.dep.Spec.Template.Spec
	for i := range k.pod.Containers {
		if k.pod.Containers[i].Name == containerName {
			k.c = &k.pod.Containers[i]
		}
	}
	if k.c == nil {
		k.add(k.depID(), "no container named %q", containerName)
		return k.problems
	}
	k.security()
	k.serviceAccount()
	k.resources()
	if !k.config(ctx) {
		return k.problems // the rest reads the configuration
	}
	k.ports()
	k.probes()
	k.shutdown()
	k.volumes()
	k.replicas()
	k.services()
	k.pdb()
	k.hpa()
	k.networkPolicy()
	k.secretsDocumented()
	return k.problems
}

func (k *checker) depID() string { return "Deployment/" + k.dep.Name }

func (k *checker) ctrID() string {
	return fmt.Sprintf("Deployment/%s container %s", k.dep.Name, k.c.Name)
}

// security: non-root, no privilege escalation, read-only root, no
// capabilities, RuntimeDefault seccomp, no host namespaces or paths.
func (k *checker) security() {
	psc := k.pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if k.pod.HostNetwork || k.pod.HostPID || k.pod.HostIPC {
		k.add(k.depID(), "hostNetwork, hostPID and hostIPC must be off")
	}
	for _, v := range k.pod.Volumes {
		if v.HostPath != nil {
			k.add(k.depID(), "volume %q is a hostPath", v.Name)
		}
	}
	all := slices.Concat(k.pod.InitContainers, k.pod.Containers)
	for i := range all {
		c := &all[i]
		where := fmt.Sprintf("Deployment/%s container %s", k.dep.Name, c.Name)
		sc := c.SecurityContext
		if sc == nil {
			k.add(where, "no securityContext")
			continue
		}
		nonRoot := sc.RunAsNonRoot
		if nonRoot == nil {
			nonRoot = psc.RunAsNonRoot
		}
		if nonRoot == nil || !*nonRoot {
			k.add(where, "securityContext.runAsNonRoot must be true (pod or container)")
		}
		uid := sc.RunAsUser
		if uid == nil {
			uid = psc.RunAsUser
		}
		if uid != nil && *uid == 0 {
			k.add(where, "runAsUser is 0 (root)")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			k.add(where, "securityContext.allowPrivilegeEscalation must be false")
		}
		if sc.Privileged != nil && *sc.Privileged {
			k.add(where, "securityContext.privileged must not be true")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			k.add(where, "securityContext.readOnlyRootFilesystem must be true")
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			k.add(where, "securityContext.capabilities.drop must hold ALL")
		}
		if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
			k.add(where, "securityContext.capabilities.add must be empty, got %v", sc.Capabilities.Add)
		}
		sp := sc.SeccompProfile
		if sp == nil {
			sp = psc.SeccompProfile
		}
		if sp == nil || sp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			k.add(where, "seccompProfile.type must be RuntimeDefault (pod or container)")
		}
	}
}

// serviceAccount: a ServiceAccount of its own with no token mounted.
func (k *checker) serviceAccount() {
	if k.pod.AutomountServiceAccountToken != nil && *k.pod.AutomountServiceAccountToken {
		k.add(k.depID(), "automountServiceAccountToken is true: the relay never calls the Kubernetes API")
	}
	name := k.pod.ServiceAccountName
	if name == "" || name == "default" {
		k.add(k.depID(), "serviceAccountName must name the relay's own ServiceAccount, got %q", name)
		return
	}
	for _, sa := range k.s.ServiceAccounts {
		if sa.Name != name {
			continue
		}
		if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			k.add("ServiceAccount/"+name, "automountServiceAccountToken must be false")
		}
		return
	}
	k.add(k.depID(), "serviceAccountName %q: no such ServiceAccount in the manifests", name)
}

// resources: CPU and memory requests (the HPA's CPU target is a share of
// the request) and a memory limit.
func (k *checker) resources() {
	r := k.c.Resources
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := r.Requests[name]; !ok || q.IsZero() {
			k.add(k.ctrID(), "resources.requests.%s is not set", name)
		}
	}
	if q, ok := r.Limits[corev1.ResourceMemory]; !ok || q.IsZero() {
		k.add(k.ctrID(), "resources.limits.memory is not set")
	}
}

// config finds the ConfigMap's plugins.yaml the container runs with, builds
// the relay's view of it and has the relay validate it.
func (k *checker) config(ctx context.Context) bool {
	args := slices.Concat(k.c.Command, k.c.Args)
	file := ""
	for i, a := range args {
		if a == "-c" && i+1 < len(args) {
			file = args[i+1]
		} else if v, ok := strings.CutPrefix(a, "-c="); ok {
			file = v
		}
	}
	if file == "" || !path.IsAbs(file) {
		k.add(k.ctrID(), "args must pass the configuration file as -c <absolute path> inside the ConfigMap's mount, got %q", args)
		return false
	}
	var mount *corev1.VolumeMount
	for i := range k.c.VolumeMounts {
		m := &k.c.VolumeMounts[i]
		if m.SubPath == "" && path.Dir(file) == path.Clean(m.MountPath) || m.SubPath != "" && path.Clean(m.MountPath) == file {
			mount = m
		}
	}
	if mount == nil {
		k.add(k.ctrID(), "no volumeMount holds the configuration file %s", file)
		return false
	}
	var vol *corev1.Volume
	for i := range k.pod.Volumes {
		if k.pod.Volumes[i].Name == mount.Name {
			vol = &k.pod.Volumes[i]
		}
	}
	if vol == nil || vol.ConfigMap == nil {
		k.add(k.ctrID(), "the configuration file %s is not on a configMap volume", file)
		return false
	}
	key := path.Base(file)
	if mount.SubPath != "" {
		key = mount.SubPath
	}
	for _, it := range vol.ConfigMap.Items {
		if it.Path == key {
			key = it.Key
		}
	}
	var cm *corev1.ConfigMap
	for _, c := range k.s.ConfigMaps {
		if c.Name == vol.ConfigMap.Name {
			cm = c
		}
	}
	if cm == nil {
		k.add(k.depID(), "volume %q names ConfigMap %q, which the manifests do not hold", vol.Name, vol.ConfigMap.Name)
		return false
	}
	data, ok := cm.Data[key]
	if !ok {
		k.add("ConfigMap/"+cm.Name, "no key %q (the container reads %s)", key, file)
		return false
	}
	env, ok := k.env()
	if !ok {
		return false
	}
	relay, err := NewRelay([]byte(data), fmt.Sprintf("ConfigMap/%s %s", cm.Name, key), env)
	if err != nil {
		k.add("ConfigMap/"+cm.Name, "%v", err)
		return false
	}
	k.relay = relay
	if k.o.Validate == nil {
		k.add(k.depID(), "no way to run switchyard validate")
		return false
	}
	k.problems = append(k.problems, relay.Validate(ctx, k.o.Validate, file)...)
	return true
}

// env is the container's SWITCHYARD_* environment as the relay would see
// it, Secrets replaced by valid placeholders.
func (k *checker) env() ([]string, bool) {
	var env []string
	ok := true
	for _, ef := range k.c.EnvFrom {
		if ef.ConfigMapRef == nil {
			k.add(k.ctrID(), "envFrom other than a ConfigMap of the manifests is not checked; use env")
			ok = false
			continue
		}
		for _, cm := range k.s.ConfigMaps {
			if cm.Name == ef.ConfigMapRef.Name {
				for name, v := range cm.Data {
					env = append(env, ef.Prefix+name+"="+v)
				}
			}
		}
	}
	for _, e := range k.c.Env {
		if !strings.HasPrefix(e.Name, "SWITCHYARD_") {
			continue
		}
		v := e.Value
		if src := e.ValueFrom; src != nil {
			switch {
			case src.SecretKeyRef != nil && e.Name == "SWITCHYARD_ENCRYPTION_KEY":
				v = placeholderEncryptionKey
			case src.SecretKeyRef != nil:
				v = placeholderSecret
			case src.ConfigMapKeyRef != nil:
				found := false
				for _, cm := range k.s.ConfigMaps {
					if cm.Name == src.ConfigMapKeyRef.Name {
						v, found = cm.Data[src.ConfigMapKeyRef.Key]
					}
				}
				if !found {
					k.add(k.ctrID(), "env %s: ConfigMap %s key %s is not in the manifests", e.Name, src.ConfigMapKeyRef.Name, src.ConfigMapKeyRef.Key)
					ok = false
				}
			default:
				k.add(k.ctrID(), "env %s: only literal values, Secrets and ConfigMaps are checked", e.Name)
				ok = false
			}
		}
		env = append(env, e.Name+"="+v)
	}
	return env, ok
}

// portOf resolves a probe's or Service's port (a number or a container
// port's name) to a number.
func (k *checker) portOf(p intstr.IntOrString) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, true
	}
	for _, cp := range k.c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func (k *checker) declares(port int32) bool {
	for _, cp := range k.c.Ports {
		if cp.ContainerPort == port && (cp.Protocol == "" || cp.Protocol == corev1.ProtocolTCP) {
			return true
		}
	}
	return false
}

// ports: the container declares the ports the relay listens on, and the
// admin API listens on the pod's interfaces, not on loopback.
func (k *checker) ports() {
	var err error
	var gwHost, adminHost string
	if k.gwPort, gwHost, err = k.relay.Port("gateway.listen", defaultGatewayListen); err != nil {
		k.add(k.relay.FileName, "%v", err)
	}
	if k.adminPort, adminHost, err = k.relay.Port("api.listen", defaultAPIListen); err != nil {
		k.add(k.relay.FileName, "%v", err)
	}
	for _, l := range []struct{ key, host string }{{"gateway.listen", gwHost}, {"api.listen", adminHost}} {
		if l.host == "localhost" || strings.HasPrefix(l.host, "127.") || l.host == "::1" {
			k.add(k.relay.FileName, "%s listens on loopback (%s): the kubelet's probes and the Services cannot reach it; use 0.0.0.0", l.key, l.host)
		}
	}
	if k.gwPort == k.adminPort {
		k.add(k.relay.FileName, "gateway.listen and api.listen share port %d", k.gwPort)
	}
	if k.gwPort != 0 && !k.declares(k.gwPort) {
		k.add(k.ctrID(), "declares no TCP containerPort %d (gateway.listen)", k.gwPort)
	}
	if k.adminPort != 0 && !k.declares(k.adminPort) {
		k.add(k.ctrID(), "declares no TCP containerPort %d (api.listen)", k.adminPort)
	}
}

// probes: readiness on /ready and liveness on /health, both on the admin
// port; a startup probe, when there is one, on either.
func (k *checker) probes() {
	check := func(name string, p *corev1.Probe, paths ...string) {
		if p == nil {
			k.add(k.ctrID(), "no %s", name)
			return
		}
		if p.HTTPGet == nil {
			k.add(k.ctrID(), "%s must be an httpGet on the admin port %d", name, k.adminPort)
			return
		}
		g := p.HTTPGet
		port, ok := k.portOf(g.Port)
		named := g.Port.String()
		if g.Port.Type != intstr.Int {
			named = fmt.Sprintf("%s (%d)", named, port)
		}
		switch {
		case !ok:
			k.add(k.ctrID(), "%s: port %q is not a port of the container", name, g.Port.String())
		case port != k.adminPort:
			k.add(k.ctrID(), "%s: port %s is not the admin port %d (api.listen): the relay serves %s only there", name, named, k.adminPort, strings.Join(paths, " and "))
		}
		if !slices.Contains(paths, g.Path) {
			k.add(k.ctrID(), "%s: path %q, want %s", name, g.Path, strings.Join(paths, " or "))
		}
		if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
			k.add(k.ctrID(), "%s: scheme %s; the admin API serves plain HTTP", name, g.Scheme)
		}
	}
	check("readinessProbe", k.c.ReadinessProbe, readyPath)
	check("livenessProbe", k.c.LivenessProbe, healthPath)
	if k.c.StartupProbe != nil {
		check("startupProbe", k.c.StartupProbe, healthPath, readyPath)
	}
}

// shutdown: a preStop sleep, and a grace period that covers it, the drain
// and the relay's headroom after the drain.
func (k *checker) shutdown() {
	var sleep int64
	switch lc := k.c.Lifecycle; {
	case lc == nil || lc.PreStop == nil:
		k.add(k.ctrID(), "no lifecycle.preStop: the load balancer may still send new devices to a pod that is stopping; use preStop.sleep")
	case lc.PreStop.Sleep != nil:
		sleep = lc.PreStop.Sleep.Seconds
		if sleep <= 0 {
			k.add(k.ctrID(), "lifecycle.preStop.sleep.seconds must be positive")
		}
	case lc.PreStop.Exec != nil:
		k.add(k.ctrID(), "lifecycle.preStop runs %q: the image is distroless, with no shell or sleep binary; use lifecycle.preStop.sleep (Kubernetes 1.30+)", lc.PreStop.Exec.Command)
	default:
		k.add(k.ctrID(), "lifecycle.preStop must be a sleep (lifecycle.preStop.sleep)")
	}
	drain, from, set, err := k.relay.Duration("gateway.drain_timeout")
	switch {
	case err != nil:
		k.add(k.relay.FileName, "%v", err)
		return
	case !set:
		k.add(k.relay.FileName, "gateway.drain_timeout is not set: set it explicitly, so that terminationGracePeriodSeconds is visibly tied to it")
		return
	}
	grace := int64(defaultGrace)
	if k.pod.TerminationGracePeriodSeconds != nil {
		grace = *k.pod.TerminationGracePeriodSeconds
	}
	need := time.Duration(sleep)*time.Second + drain + k.o.Headroom
	if time.Duration(grace)*time.Second < need {
		k.add(k.depID(), "terminationGracePeriodSeconds %d is shorter than preStop sleep %ds + gateway.drain_timeout %s (%s) + the relay's shutdown headroom after the drain %s = %s: the kubelet would SIGKILL the relay before it has drained its devices",
			grace, sleep, drain, from, k.o.Headroom, need)
	}
}

// volumes: every folder the relay writes is on a writable emptyDir or PVC
// (the root file system is read-only); the configuration is mounted
// read-only.
func (k *checker) volumes() {
	for _, w := range k.relay.WritablePaths() {
		what, dir := w[0], w[1]
		if !path.IsAbs(dir) {
			k.add(k.relay.FileName, "%s is %q, relative to a working folder on the read-only root file system: make it absolute, on a mounted volume", what, dir)
			continue
		}
		m, v := k.mountOf(dir)
		switch {
		case m == nil:
			k.add(k.ctrID(), "%s %s is on the read-only root file system: mount an emptyDir or a PVC there", what, dir)
		case m.ReadOnly:
			k.add(k.ctrID(), "%s %s is on the read-only mount %q", what, dir, m.Name)
		case v == nil || (v.EmptyDir == nil && v.PersistentVolumeClaim == nil && v.Ephemeral == nil):
			k.add(k.ctrID(), "%s %s is on volume %q, which is not an emptyDir or a PVC", what, dir, m.Name)
		}
	}
	if key := k.relay.SigningKey(); key != "" {
		if m, v := k.mountOf(key); m == nil || v == nil || (v.Secret == nil && (m.ReadOnly || v.EmptyDir == nil && v.PersistentVolumeClaim == nil)) {
			k.add(k.ctrID(), "firmware.signing_key %s is neither on a Secret volume nor on a writable volume", key)
		}
	}
}

// mountOf finds the container's mount holding p (the longest prefix) and
// its volume.
func (k *checker) mountOf(p string) (*corev1.VolumeMount, *corev1.Volume) {
	var best *corev1.VolumeMount
	for i := range k.c.VolumeMounts {
		m := &k.c.VolumeMounts[i]
		mp := path.Clean(m.MountPath)
		if (p == mp || strings.HasPrefix(p, mp+"/")) && (best == nil || len(mp) > len(path.Clean(best.MountPath))) {
			best = m
		}
	}
	if best == nil {
		return nil, nil
	}
	for i := range k.pod.Volumes {
		if k.pod.Volumes[i].Name == best.Name {
			return best, &k.pod.Volumes[i]
		}
	}
	return best, nil
}

// replicas: the embedded store is one file one process locks: one replica,
// replaced with Recreate, on a PVC, and no HPA. An HPA owns the count where
// there is one.
func (k *checker) replicas() {
	hpa := k.hpaOf()
	switch backend := k.relay.Backend(); backend {
	case "embedded":
		if k.dep.Spec.Replicas != nil && *k.dep.Spec.Replicas != 1 {
			k.add(k.depID(), "replicas %d with the embedded store: its bbolt file is locked by one process; more than one replica needs store.backend dgraph", *k.dep.Spec.Replicas)
		}
		if hpa != "" {
			k.add(hpa, "scales the relay on the embedded store, which takes exactly one replica; use store.backend dgraph")
		}
		if k.dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			k.add(k.depID(), "strategy %q with the embedded store: a rolling update starts the new pod while the old one holds the store's lock (and its ReadWriteOnce volume); use Recreate", k.dep.Spec.Strategy.Type)
		}
		dir := path.Dir(k.relay.String("store.embedded.path", defaultStorePath))
		if m, v := k.mountOf(dir); m != nil && v != nil && v.PersistentVolumeClaim == nil {
			k.add(k.depID(), "the embedded store's folder %s is on volume %q, not a PersistentVolumeClaim: every tenant, device and key would go with the pod", dir, m.Name)
		}
	case "dgraph":
		if hpa != "" && k.dep.Spec.Replicas != nil {
			k.add(k.depID(), "sets replicas (%d) while %s owns the count: every apply would reset it; drop spec.replicas", *k.dep.Spec.Replicas, hpa)
		}
	}
}

// hpaOf names the HPA that targets the Deployment, or "".
func (k *checker) hpaOf() string {
	for _, h := range k.s.HPAs {
		r := h.Spec.ScaleTargetRef
		if r.Kind == "Deployment" && r.Name == k.dep.Name {
			return "HorizontalPodAutoscaler/" + h.Name
		}
	}
	return ""
}

// podMatches reports whether a selector of label values picks the relay's
// pods.
func (k *checker) podMatches(sel map[string]string) bool {
	return len(sel) > 0 && labels.SelectorFromSet(sel).Matches(labels.Set(k.dep.Spec.Template.Labels))
}

func (k *checker) podMatchesSelector(sel *metav1.LabelSelector) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(k.dep.Spec.Template.Labels))
}

// services: each Service selects the relay's pods and targets a port of
// them; the gateway is exposed outside the cluster, the admin API only
// inside.
func (k *checker) services() {
	var gateway, admin bool
	if !k.podMatchesSelector(k.dep.Spec.Selector) {
		k.add(k.depID(), "spec.selector does not match the pod template's labels")
	}
	for _, svc := range k.s.Services {
		where := "Service/" + svc.Name
		if !k.podMatches(svc.Spec.Selector) {
			k.add(where, "selector %v does not match the Deployment's pod labels %v", svc.Spec.Selector, k.dep.Spec.Template.Labels)
		}
		var exposesGateway, exposesAdmin bool
		for _, p := range svc.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			n, ok := k.portOf(target)
			switch {
			case !ok:
				k.add(where, "port %d: targetPort %q is not a port of the relay's container", p.Port, target.String())
			case n == k.gwPort:
				exposesGateway = true
			case n == k.adminPort:
				exposesAdmin = true
			default:
				k.add(where, "port %d: targetPort %s is %d, which the relay does not listen on (%d gateway, %d admin)", p.Port, target.String(), n, k.gwPort, k.adminPort)
			}
		}
		external := svc.Spec.Type == corev1.ServiceTypeLoadBalancer || svc.Spec.Type == corev1.ServiceTypeNodePort || len(svc.Spec.ExternalIPs) > 0
		if exposesGateway {
			gateway = true
			if !external {
				k.add(where, "exposes the gateway (%d) as %s: devices come from outside the cluster; use LoadBalancer or NodePort", k.gwPort, svc.Spec.Type)
			}
		}
		if exposesAdmin {
			admin = true
			if external {
				k.add(where, "exposes the admin API (%d) outside the cluster (%s): keep it a ClusterIP Service of its own", k.adminPort, svc.Spec.Type)
			}
		}
	}
	if !gateway {
		k.add("Service", "none exposes the gateway port %d", k.gwPort)
	}
	if !admin {
		k.add("Service", "none exposes the admin port %d inside the cluster", k.adminPort)
	}
}

// minReplicas is the fewest pods the relay runs with.
func (k *checker) minReplicas() int32 {
	for _, h := range k.s.HPAs {
		if h.Spec.ScaleTargetRef.Name == k.dep.Name && h.Spec.MinReplicas != nil {
			return *h.Spec.MinReplicas
		}
	}
	if k.dep.Spec.Replicas != nil {
		return *k.dep.Spec.Replicas
	}
	return 1
}

// pdb: one budget for the relay's pods, which lets a drain proceed.
func (k *checker) pdb() {
	n := 0
	for _, p := range k.s.PDBs {
		where := "PodDisruptionBudget/" + p.Name
		if !k.podMatchesSelector(p.Spec.Selector) {
			k.add(where, "selector does not match the Deployment's pod labels %v", k.dep.Spec.Template.Labels)
			continue
		}
		n++
		pods := int(k.minReplicas())
		allowed := pods
		switch {
		case p.Spec.MinAvailable != nil && p.Spec.MaxUnavailable != nil:
			k.add(where, "sets both minAvailable and maxUnavailable")
		case p.Spec.MinAvailable != nil:
			v, err := intstr.GetScaledValueFromIntOrPercent(p.Spec.MinAvailable, pods, true)
			if err != nil {
				k.add(where, "minAvailable: %v", err)
			}
			allowed = pods - v
		case p.Spec.MaxUnavailable != nil:
			v, err := intstr.GetScaledValueFromIntOrPercent(p.Spec.MaxUnavailable, pods, true)
			if err != nil {
				k.add(where, "maxUnavailable: %v", err)
			}
			allowed = v
		}
		if allowed < 1 {
			k.add(where, "allows no disruption at %d replica(s): every node drain would block on the relay", pods)
		}
	}
	if n != 1 {
		k.add("PodDisruptionBudget", "want exactly one for the relay's pods, got %d", n)
	}
}

// hpa: targets the Deployment, scales on CPU and on open sessions, below
// gateway.max_connections, with a rule of the adapter serving the metric.
func (k *checker) hpa() {
	for _, h := range k.s.HPAs {
		where := "HorizontalPodAutoscaler/" + h.Name
		r := h.Spec.ScaleTargetRef
		if r.APIVersion != "apps/v1" || r.Kind != "Deployment" || r.Name != k.dep.Name {
			k.add(where, "scaleTargetRef is %s %s/%s, not apps/v1 Deployment/%s", r.APIVersion, r.Kind, r.Name, k.dep.Name)
		}
		if h.Spec.MinReplicas != nil && *h.Spec.MinReplicas > h.Spec.MaxReplicas {
			k.add(where, "minReplicas %d exceeds maxReplicas %d", *h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
		var cpu, conns bool
		for _, m := range h.Spec.Metrics {
			switch {
			case m.Resource != nil && m.Resource.Name == corev1.ResourceCPU:
				cpu = true
			case m.Pods != nil:
				name := m.Pods.Metric.Name
				if name == connectionsName {
					conns = true
					k.connectionsTarget(where, m.Pods.Target.AverageValue)
				}
				if k.o.Adapter == nil {
					k.add(where, "Pods metric %s: no prometheus-adapter rule file to serve it", name)
				} else if err := k.o.Adapter.Serves(name); err != nil {
					k.add(where, "Pods metric %s: %s: %v", name, k.o.AdapterName, err)
				}
			}
		}
		if !cpu {
			k.add(where, "no Resource metric on cpu")
		}
		if !conns {
			k.add(where, "no Pods metric %s (open device sessions)", connectionsName)
		}
	}
}

func (k *checker) connectionsTarget(where string, v *resource.Quantity) {
	if v == nil {
		k.add(where, "Pods metric %s: target.averageValue is not set", connectionsName)
		return
	}
	max, err := k.relay.Int("gateway.max_connections", defaultMaxConnections)
	if err != nil {
		k.add(k.relay.FileName, "%v", err)
		return
	}
	if t := v.Value(); t <= 0 || t >= int64(max) {
		k.add(where, "Pods metric %s: averageValue %d must lie between 0 and gateway.max_connections (%d), or the HPA scales out only once devices are refused", connectionsName, t, max)
	}
}

// secretsDocumented: every Secret the pods need and the manifests do not
// create is named, with its keys, in deploy/README.md.
func (k *checker) secretsDocumented() {
	need := map[string][]string{}
	for _, e := range k.c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			r := e.ValueFrom.SecretKeyRef
			need[r.Name] = append(need[r.Name], r.Key)
		}
	}
	for _, v := range k.pod.Volumes {
		if v.Secret != nil {
			need[v.Secret.SecretName] = append(need[v.Secret.SecretName], "")
			for _, it := range v.Secret.Items {
				need[v.Secret.SecretName] = append(need[v.Secret.SecretName], it.Key)
			}
		}
	}
	if signing := k.relay.SigningKey(); signing != "" {
		if m, v := k.mountOf(signing); m != nil && v != nil && v.Secret != nil {
			rel := strings.TrimPrefix(signing, path.Clean(m.MountPath)+"/")
			need[v.Secret.SecretName] = append(need[v.Secret.SecretName], rel)
		}
	}
	for _, s := range k.s.Secrets {
		delete(need, s.Name)
	}
	for _, name := range sortedKeys(need) {
		if k.o.Docs == "" {
			k.add("Secret/"+name, "needed by the pods and not in the manifests, and deploy/README.md has no \"Kubernetes\" section saying how to create it")
			continue
		}
		if !strings.Contains(k.o.Docs, name) {
			k.add("Secret/"+name, "needed by the pods and not in the manifests: deploy/README.md's \"Kubernetes\" section must say how to create it")
		}
		for _, key := range need[name] {
			if key != "" && !strings.Contains(k.o.Docs, key) {
				k.add("Secret/"+name, "key %q: deploy/README.md's \"Kubernetes\" section must name it", key)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	return keys
}
