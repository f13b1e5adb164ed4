-- Other ways callers ask an item's standard question (knowledge/model.py,
-- KnowledgeItem.alternatives); the files in config/knowledge/ carry them.
ALTER TABLE knowledge_items ADD COLUMN alternatives text[] NOT NULL DEFAULT '{}';
