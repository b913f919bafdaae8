//! Benchmarks (issue 3): a load generator speaking the Kafka protocol, so it runs against any
//! Kafka-compatible broker, and storage micro-benchmarks beside a plain direct-I/O writer.
//! Empty for now.
