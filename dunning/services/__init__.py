"""Service layer: the use cases over the database, each taking what it touches as parameters.

One package per capability, in the order the daily run uses them:

- `runs`: the run lifecycle (start, heartbeat, complete, fail, abandon) and batches.
- `outreach`: planning a batch: select, decide, render, write the outbox.
- `dispatch`: sending what is due through the gateways, printing letters, receipts.
- `contact`: the contact rules at plan and send time, stops and opt-outs.
- `lifecycle`: promises to pay, grace, payment plans, treatments in force and cure, actions.
- `imports`: the CSV imports.
- `daily`: the daily run and the dispatcher and receipts runs put together: stages, shards,
  worker processes.

Beside them: `delinquency` (DPD and tiers in SQL), `explain` (one account's day) and `program`
(checks across the files of a program directory).
"""
