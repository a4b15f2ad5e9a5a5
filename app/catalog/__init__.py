"""The declaration's catalogue: declaration, priorities, recommendations, associations."""
