"""`meterline chaos`: faults under a Lora workload, every surface against a reference."""
