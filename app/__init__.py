"""birthday: birthday-paradox support-size audits for generative models."""
