"""Side-by-side benchmark: the official SDK loop, a lean single-process uploader, audiencesync."""
