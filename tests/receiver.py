"""The tests use the reference receiver that ships with Docora (docora.receiver)."""

from docora.receiver import Received, ReceiverState, compact, verify
from docora.receiver import WebhookReceiver as ReceiverServer

__all__ = ["Received", "ReceiverServer", "ReceiverState", "compact", "verify"]
