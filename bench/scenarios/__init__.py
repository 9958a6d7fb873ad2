"""One module per scenario of issue 12 §1: `run(ctx)` appends its tables to `ctx.tables`."""
