# Builds tripwire-collector with OCB from this repository.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY . .
RUN ./collector/build.sh

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/tripwire-collector /usr/bin/tripwire-collector
USER nonroot
EXPOSE 4317 13133
ENTRYPOINT ["/usr/bin/tripwire-collector"]
