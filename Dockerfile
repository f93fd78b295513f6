# A runner image for dagger's Kubernetes pods, for those who build images
# their own way: the static binary alone, as a user that is not root, as
# package runnerimage makes one from a running executable.
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
