"""Wire models of the Gemini API's generateContent family (generateContent, countTokens,
models, embeddings): requests (request.py), their translation into a provider Turn (turn.py)
and answers written from provider events (answer.py, models.py); the requests of a batch
(batches.py)."""
