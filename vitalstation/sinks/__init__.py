"""Outputs beyond the store: DynamoDB anomalies, notifications, exports."""
