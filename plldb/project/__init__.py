"""Reading the user's project (SAM, CDK, Serverless, functions by name) into LocalFunction records."""
