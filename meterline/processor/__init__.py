"""The pure per-customer processor: a customer's state and that customer's share of a batch
in, the new state and a typed ``Step`` out (raw rows, rejects, dedup chunk, billing effects).

No Kafka, Faust or ClickHouse import: replay skipping, dedup, windows and billing all happen
here and are tested without a broker. The adapters (streams/) decode records and hand them in;
the checkpoint (streams/checkpoint.py) makes the step durable in the one order that keeps a
crash at any instant exact.
"""
