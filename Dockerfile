# destination-iterable image, following Airbyte's Python connector conventions:
# the pinned base image (= metadata.yaml connectorBuildOptions.baseImage), the package installed with its
# console script, the non-root `airbyte` user, and AIRBYTE_ENTRYPOINT/ENTRYPOINT running `destination-iterable`.
# Build: docker build -t airbyte/destination-iterable:dev .
FROM docker.io/airbyte/python-connector-base:4.0.2@sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73

WORKDIR /airbyte/integration_code

# Only what `pip install .` needs (see .dockerignore); integration_tests/test_packaging.py installs exactly this.
COPY setup.py pyproject.toml README.md main.py ./
COPY destination_iterable ./destination_iterable

RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info \
    && destination-iterable spec > /dev/null \
    && (id -u airbyte > /dev/null 2>&1 || useradd --uid 1000 --create-home --shell /bin/bash airbyte) \
    && chown -R airbyte /airbyte

ENV AIRBYTE_ENTRYPOINT="destination-iterable"
ENTRYPOINT ["destination-iterable"]

LABEL io.airbyte.name=airbyte/destination-iterable
LABEL io.airbyte.version=0.2.5

USER airbyte
