# A multi-stage build: Swift compiles `warehouse` (statically linked Swift runtime) against
# hiredis and libpq; the runtime image is Debian slim with only those libraries, curl for the
# healthchecks and the sample data (the migrations and analytics queries are compiled into the binary).
FROM swift:6.3-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libhiredis-dev libpq-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --product warehouse --static-swift-stdlib \
 && cp "$(swift build -c release --show-bin-path)/warehouse" /warehouse

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libhiredis0.14 libpq5 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /app warehouse
COPY --from=build /warehouse /usr/local/bin/warehouse
COPY data /app/data
WORKDIR /app
USER warehouse
EXPOSE 5000
CMD ["warehouse", "--help"]
