"""The helper stack in the account: boto3 clients, bootstrap, finding the stack, packaging its zips."""
