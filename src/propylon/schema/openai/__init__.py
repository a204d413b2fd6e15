"""Pydantic models of OpenAI's wire formats: Chat Completions, embeddings."""
