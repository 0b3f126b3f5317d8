# The maillage binary in a minimal image (compose.yaml builds it).
#   docker build -t maillage .
#   docker run -p 8080:8080 -v maillage-data:/data maillage serve --data=/data --demo
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/maillage ./cmd/maillage

# Static binary, no shell; runs as an unprivileged user.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/maillage /usr/local/bin/maillage
WORKDIR /data
VOLUME /data
# HTTP API and /metrics; partner feeds (--partner-listen).
EXPOSE 8080 4223
ENTRYPOINT ["/usr/local/bin/maillage"]
CMD ["serve", "--data=/data"]
