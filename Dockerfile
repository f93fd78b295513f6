# The runner image of dagger's Kubernetes pods, for those who build images
# their own way. dagger itself needs none of this: with --registry it
# pushes an image of its own executable (package runnerimage), which is
# the same image: the static binary alone, as a user that is not root.
#
#   docker build -t REGISTRY/dagger-runner .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -o /dagger ./cmd/dagger

FROM scratch
COPY --from=build --chmod=0555 /dagger /dagger
USER 65532:65532
ENTRYPOINT ["/dagger"]
