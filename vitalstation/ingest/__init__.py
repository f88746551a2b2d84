"""One module per input (MQTT, Kinesis, REST, file drop, broker), each with start/stop/health."""
