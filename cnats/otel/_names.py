"""The names cnats.otel emits: attribute, metric and operation names of the OpenTelemetry messaging semantic
conventions, and the few NATS-specific ones (``messaging.nats.*``) where the conventions have no general name.

Written out here rather than imported from ``opentelemetry-semantic-conventions``: the extra depends on
``opentelemetry-api`` only, and the incubating names of that package move between its releases.
"""

from __future__ import annotations

from typing import Final

# The conventions these names were checked against (the messaging registry of this schema version).
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.44.0"
INSTRUMENTATION_NAME: Final = "cnats.otel"

SYSTEM: Final = "nats"

# -- span and metric attributes (general messaging conventions) ---------------------------------------------------
MESSAGING_SYSTEM: Final = "messaging.system"
OPERATION_NAME: Final = "messaging.operation.name"
OPERATION_TYPE: Final = "messaging.operation.type"
DESTINATION_NAME: Final = "messaging.destination.name"
DESTINATION_TEMPLATE: Final = "messaging.destination.template"
DESTINATION_TEMPORARY: Final = "messaging.destination.temporary"
SUBSCRIPTION_NAME: Final = "messaging.destination.subscription.name"  # a JetStream consumer
CONSUMER_GROUP: Final = "messaging.consumer.group.name"  # a queue group
BODY_SIZE: Final = "messaging.message.body.size"
MESSAGE_ID: Final = "messaging.message.id"  # Nats-Msg-Id (JetStream de-duplication id)
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
ERROR_TYPE: Final = "error.type"

# -- NATS-specific attributes (no general convention covers them) -------------------------------------------------
NATS_STREAM: Final = "messaging.nats.stream.name"
NATS_STREAM_SEQUENCE: Final = "messaging.nats.message.stream_sequence"
NATS_DELIVERY_COUNT: Final = "messaging.nats.message.delivery_count"
NATS_SERVICE: Final = "messaging.nats.service.name"
NATS_ENDPOINT: Final = "messaging.nats.service.endpoint"

# -- operations: (messaging.operation.name, messaging.operation.type) ------------------------------------------------
PUBLISH: Final = ("publish", "send")
REQUEST: Final = ("request", "send")
RECEIVE: Final = ("receive", "receive")
PROCESS: Final = ("process", "process")

# -- metrics --------------------------------------------------------------------------------------------------------
SENT_MESSAGES: Final = "messaging.client.sent.messages"
CONSUMED_MESSAGES: Final = "messaging.client.consumed.messages"
SENT_BYTES: Final = "messaging.nats.client.sent.bytes"  # the conventions count messages, not bytes
CONSUMED_BYTES: Final = "messaging.nats.client.consumed.bytes"
OPERATION_DURATION: Final = "messaging.client.operation.duration"
PROCESS_DURATION: Final = "messaging.process.duration"
# the buckets the conventions advise for their duration histograms (seconds)
DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
