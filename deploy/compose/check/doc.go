// Package deploycheck checks the deploy files of the repository without a
// container engine: the Dockerfile is linted and converted for linux/amd64
// and linux/arm64 by BuildKit's own Dockerfile frontend (base images are not
// fetched), its build stage is run on this machine in a copy of the build
// context that .dockerignore lets through, the compose files are loaded by
// compose-go (the compose-spec JSON schema, interpolation, consistency) and
// cross-checked (health-gated start order, pinned images, what the relay
// makes of its environment), the services of the stacks are started on the
// host from their compose definitions, translated from container names and
// paths to loopback ports and temporary folders, and the systemd unit is
// checked by systemd-analyze.
//
// The tests are the checks (`make deploy-check` runs them); this package
// holds what they share. Under DEPLOYCHECK_REQUIRE a missing tool
// (systemd-analyze, the Dgraph server, Mosquitto) fails a test instead of
// skipping it.
package deploycheck
