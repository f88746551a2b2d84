"""The four ways to reach a station: MQTT, REST, file drop, Kinesis (one module each).

Only ``base`` and ``file`` are imported eagerly; paho and boto3 load with their transport.
"""
