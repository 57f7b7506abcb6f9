package main

import (
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// namespaceNameLabel is the label every namespace carries with its name
// (Kubernetes 1.22+).
const namespaceNameLabel = "kubernetes.io/metadata.name"

// selects reports whether a policy applies to the relay's pods (an empty
// podSelector selects every pod of its namespace).
func (k *checker) selects(np *networkingv1.NetworkPolicy) bool {
	s, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	return err == nil && s.Matches(labels.Set(k.dep.Spec.Template.Labels))
}

func hasType(np *networkingv1.NetworkPolicy, t networkingv1.PolicyType) bool {
	if len(np.Spec.PolicyTypes) == 0 { // the API server's default
		return t == networkingv1.PolicyTypeIngress || t == networkingv1.PolicyTypeEgress && len(np.Spec.Egress) > 0
	}
	return slices.Contains(np.Spec.PolicyTypes, t)
}

// covers reports whether a rule's ports admit port/proto on the relay's
// pods (named ports resolve through the container's ports; for egress a
// named port cannot be resolved here and never matches a number).
func (k *checker) covers(ports []networkingv1.NetworkPolicyPort, port int32, proto corev1.Protocol, named bool) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		n := p.Port.IntVal
		if p.Port.Type != 0 { // a name
			if !named {
				continue
			}
			var ok bool
			if n, ok = k.portOf(*p.Port); !ok {
				continue
			}
		}
		if n == port || p.EndPort != nil && n <= port && port <= *p.EndPort {
			return true
		}
	}
	return false
}

// anywhere reports whether a peer list admits every address.
func anywhere(peers []networkingv1.NetworkPolicyPeer) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if p.IPBlock != nil && (p.IPBlock.CIDR == "0.0.0.0/0" || p.IPBlock.CIDR == "::/0") && len(p.IPBlock.Except) == 0 {
			return true
		}
	}
	return false
}

// networkPolicy: devices reach the gateway from anywhere; the admin API
// only from the relay's namespace and the monitoring namespace; egress is
// restricted, with DNS and (on Dgraph) the alphas' ports open.
func (k *checker) networkPolicy() {
	var ingress, egress []networkingv1.NetworkPolicySpec
	var names []string
	for _, np := range k.s.NetPols {
		if !k.selects(np) {
			continue
		}
		names = append(names, "NetworkPolicy/"+np.Name)
		if hasType(np, networkingv1.PolicyTypeIngress) {
			ingress = append(ingress, np.Spec)
		}
		if hasType(np, networkingv1.PolicyTypeEgress) {
			egress = append(egress, np.Spec)
		}
	}
	where := "NetworkPolicy"
	if len(names) == 1 {
		where = names[0]
	}
	if len(names) == 0 {
		k.add(where, "none selects the relay's pods %v", k.dep.Spec.Template.Labels)
		return
	}
	k.ingress(where, ingress)
	k.egress(where, egress)
}

func (k *checker) ingress(where string, specs []networkingv1.NetworkPolicySpec) {
	if len(specs) == 0 {
		k.add(where, "ingress is not restricted (no policyType Ingress): the admin port %d would be open to the whole cluster", k.adminPort)
		return
	}
	var gatewayOpen, fromNamespace, fromMonitoring bool
	for _, spec := range specs {
		for i, r := range spec.Ingress {
			if k.covers(r.Ports, k.gwPort, corev1.ProtocolTCP, true) && anywhere(r.From) {
				gatewayOpen = true
			}
			if !k.covers(r.Ports, k.adminPort, corev1.ProtocolTCP, true) {
				continue
			}
			if len(r.From) == 0 {
				k.add(where, "ingress rule %d admits the admin port %d from anywhere: only this namespace and %q may reach it", i, k.adminPort, k.o.MonitoringNamespace)
			}
			for _, p := range r.From {
				switch {
				case p.IPBlock != nil:
					k.add(where, "ingress rule %d admits the admin port %d from ipBlock %s: only this namespace and %q may reach it", i, k.adminPort, p.IPBlock.CIDR, k.o.MonitoringNamespace)
				case p.NamespaceSelector == nil:
					fromNamespace = true
				case len(p.NamespaceSelector.MatchExpressions) == 0 && len(p.NamespaceSelector.MatchLabels) == 1 &&
					p.NamespaceSelector.MatchLabels[namespaceNameLabel] == k.o.MonitoringNamespace:
					fromMonitoring = true
				default:
					which := "every namespace"
					if s := metav1.FormatLabelSelector(p.NamespaceSelector); s != "<none>" {
						which = "namespaces " + s
					}
					k.add(where, "ingress rule %d admits the admin port %d from %s: only this namespace and %q (by its %s label) may reach it",
						i, k.adminPort, which, k.o.MonitoringNamespace, namespaceNameLabel)
				}
			}
		}
	}
	if !gatewayOpen {
		k.add(where, "no ingress rule admits the gateway port %d from anywhere: devices could not connect", k.gwPort)
	}
	if !fromNamespace {
		k.add(where, "no ingress rule admits the admin port %d from this namespace", k.adminPort)
	}
	if !fromMonitoring {
		k.add(where, "no ingress rule admits the admin port %d from the namespace %q: Prometheus could not scrape /metrics", k.adminPort, k.o.MonitoringNamespace)
	}
}

func (k *checker) egress(where string, specs []networkingv1.NetworkPolicySpec) {
	if len(specs) == 0 {
		k.add(where, "egress is not restricted (no policyType Egress)")
		return
	}
	allows := func(port int32, proto corev1.Protocol) bool {
		for _, spec := range specs {
			for _, r := range spec.Egress {
				if k.covers(r.Ports, port, proto, false) {
					return true
				}
			}
		}
		return false
	}
	for _, spec := range specs {
		for i, r := range spec.Egress {
			if len(r.Ports) == 0 && anywhere(r.To) {
				k.add(where, "egress rule %d admits every port to anywhere", i)
			}
		}
	}
	if !allows(53, corev1.ProtocolUDP) {
		k.add(where, "egress: no rule admits DNS (UDP 53): no name the relay dials would resolve")
	}
	if k.relay.Backend() == "dgraph" {
		ports, err := k.relay.DgraphPorts()
		if err != nil {
			k.add(k.relay.FileName, "%v", err)
			return
		}
		for _, p := range ports {
			n, err := strconv.Atoi(p[1])
			if err == nil && !allows(int32(n), corev1.ProtocolTCP) {
				k.add(where, "egress: no rule admits TCP %d (%s): the relay could not reach Dgraph", n, p[0])
			}
		}
	}
}
