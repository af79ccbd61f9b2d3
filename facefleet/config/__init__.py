"""How a deployment and a job are configured: settings, job options, retry policy, the job context, the core's errors."""
