"""Reading: query windows, authorization scopes, public stats, organization metrics and analytics."""
