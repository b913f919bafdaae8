"""What Spate does not serve yet (transactions) or serves as Kafka without an authorizer or SASL
does (ACLs, SASL): real clients must fail at once with a named error, never hang, and the broker
must keep serving everything else on the same connection and afterwards."""

from __future__ import annotations

import time

import pytest

from spate_helpers import create_topic, produce_confluent

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

try:
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import (
        ACL,
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourcePatternFilter,
    )
    from kafka.admin import ResourceType as KpResourceType
    from kafka.errors import SecurityDisabledError, TransactionalIdAuthorizationFailedError
except ImportError as e:  # a missing client is a failure, never a skip
    pytest.fail(f"kafka-python is not importable ({e}); pip install 'kafka-python>=3,<4'", pytrace=False)

# Far longer than a fail-fast answer takes; a client that retries would run into it.
FAIL_FAST_S = 5.0


def test_confluent_init_transactions_fails_fast_and_fatally_then_plain_producing_works(broker, topic):
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap, "transactional.id": "spate-tx", "message.timeout.ms": 10000}
    )
    started = time.monotonic()
    with pytest.raises(KafkaException) as info:
        producer.init_transactions(30)
    elapsed = time.monotonic() - started
    error = info.value.args[0]
    assert elapsed < FAIL_FAST_S, f"init_transactions took {elapsed:.1f}s: the client retried instead of failing"
    assert error.code() == 53, error  # TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    assert error.fatal(), f"not fatal, a client would retry it: {error}"
    assert "transactions are not supported" in error.str(), error.str()

    # The broker is unaffected: an idempotent producer and a read_committed consumer work.
    create_topic(broker.bootstrap, topic, 1)
    reports = produce_confluent(broker.bootstrap, topic, [{"value": f"v{i}".encode()} for i in range(20)])
    assert [offset for _, _, offset in reports] == list(range(20))
    idempotent = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    idempotent.produce(topic, value=b"idempotent")
    assert idempotent.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": broker.bootstrap,
            "group.id": f"rc-{topic}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        values = []
        deadline = time.monotonic() + 30
        while len(values) < 21 and time.monotonic() < deadline:
            for m in consumer.consume(100, timeout=0.5):
                assert m.error() is None, m.error()
                values.append(m.value())
        assert values == [f"v{i}".encode() for i in range(20)] + [b"idempotent"]
    finally:
        consumer.close()


def test_kafka_python_init_transactions_fails_fast(broker):
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="spate-tx-kp")
    try:
        started = time.monotonic()
        with pytest.raises(TransactionalIdAuthorizationFailedError):
            producer.init_transactions()
        assert time.monotonic() - started < FAIL_FAST_S
    finally:
        producer.close(timeout=5)


def test_confluent_acl_calls_get_security_disabled(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    binding = AclBinding(
        ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW
    )
    everything = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY
    )
    for futures in (admin.create_acls([binding]), admin.delete_acls([everything])):
        (future,) = futures.values()
        with pytest.raises(KafkaException) as info:
            future.result(timeout=FAIL_FAST_S)
        error = info.value.args[0]
        assert error.name() == "SECURITY_DISABLED", error
        assert "No Authorizer" in error.str(), error.str()
    # librdkafka drops DescribeAcls' top-level error code (rd_kafka_DescribeAclsResponse_parse),
    # so it reports an empty list; what matters here is that it answers and lists nothing.
    assert admin.describe_acls(everything).result(timeout=FAIL_FAST_S) == []


def test_kafka_python_acl_calls_get_security_disabled(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
    try:
        acl_filter = ACLFilter(
            principal=None,
            host="*",
            operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(KpResourceType.TOPIC, None, ACLResourcePatternType.ANY),
        )
        with pytest.raises(SecurityDisabledError):
            admin.describe_acls(acl_filter)
        acl = ACL(
            principal="User:alice",
            host="*",
            operation=ACLOperation.READ,
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(KpResourceType.TOPIC, "t", ACLResourcePatternType.LITERAL),
        )
        created = admin.create_acls([acl])
        assert not created["succeeded"], created
        (failed,) = created["failed"]
        # kafka-python lists the error class of each failed creation.
        assert failed is SecurityDisabledError or isinstance(failed, SecurityDisabledError), failed
        # The admin connection still works for everything else.
        assert isinstance(admin.list_topics(), list)
    finally:
        admin.close()


def test_a_sasl_client_on_the_plaintext_listener_fails_with_a_named_error(broker):
    errors = []
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": "u",
            "sasl.password": "p",
            "error_cb": lambda err: errors.append(err),
        }
    )
    deadline = time.monotonic() + FAIL_FAST_S
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    assert errors, "no error reported for a SASL client on a PLAINTEXT listener"
    assert any("SASL" in e.str() for e in errors), [e.str() for e in errors]
    # The broker keeps serving plaintext clients.
    metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    assert metadata.brokers
