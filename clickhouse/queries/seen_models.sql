-- Internal (price loading): every (model, service tier) llm_usage has calls for.
SELECT DISTINCT model, service_tier
FROM llm_usage
WHERE model != ''
ORDER BY model, service_tier
