// Package runnerimage makes the runner image of dagger's Kubernetes pods
// from the running executable itself, and publishes it: a Go program that
// embeds dagger with builtins of its own is then its own runner image,
// with nothing else to build or package.
//
// # The image
//
// One layer holds the executable at Path, mode 0555 and owned by root, and
// nothing else: no shell, no libraries, no passwd file. The config runs it
// as its entrypoint, as UID:UID, not root, for the restricted Pod Security
// Standard. Every time in the image is the Unix epoch, so the image, and
// its digest, are a function of the executable's bytes alone: the same
// binary always gives the same image.
//
// # Tags and pushes
//
// The image is tagged "sha256-" and the first 16 hexadecimal digits of the
// executable's SHA-256. Push first asks the registry for that tag, one
// request, and uploads only when it is missing, so an unchanged binary costs
// nothing more. Credentials come from docker's config and credential
// helpers, as for every other tool; plain HTTP is used only for a registry
// on a loopback address, or when asked.
//
// # Refusals
//
// FromExecutable refuses an executable that could not run alone in such an
// image on the cluster's nodes: one that is not a Linux ELF executable
// (built on macOS or Windows), is dynamically linked (built with cgo), or
// is built for another architecture than the nodes'. The error says how to
// build one that can: CGO_ENABLED=0 GOOS=linux GOARCH=... go build.
package runnerimage
