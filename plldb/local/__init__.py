"""Running handlers here as the Lambda runtime runs them: executor, isolation, logging, debuggers."""
