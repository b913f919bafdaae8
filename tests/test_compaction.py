"""Compacted topics (issue 17). What exists so far: Kafka's produce-time rule that every record
of a topic whose cleanup.policy includes compact has a key."""

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def test_a_record_without_a_key_is_refused_by_a_compacted_topic(broker, topic):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    new = NewTopic(topic, num_partitions=1, replication_factor=1, config={"cleanup.policy": "compact"})
    assert admin.create_topics([new])[topic].result(timeout=30) is None

    outcomes = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 0})
    for key in [None, b"k"]:
        producer.produce(topic, key=key, value=b"v", on_delivery=lambda err, msg: outcomes.append((msg.key(), err)))
        producer.flush(30)
    assert len(outcomes) == 2, outcomes
    refused, taken = outcomes
    assert refused[1] is not None and refused[1].code() == KafkaError.INVALID_RECORD, refused
    assert taken == (b"k", None), taken

    # A compressed batch is read too: one keyless record among keyed ones refuses the batch.
    outcomes.clear()
    gz = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "gzip", "linger.ms": 50})
    for key in [b"a", None, b"b"]:
        gz.produce(topic, key=key, value=b"v", on_delivery=lambda err, msg: outcomes.append((msg.key(), err)))
    gz.flush(30)
    assert len(outcomes) == 3 and all(err is not None and err.code() == KafkaError.INVALID_RECORD for _, err in outcomes), outcomes
