"""Pre-push checks: the rules (pure, over gathered facts) and the policy files and flags that configure them."""
