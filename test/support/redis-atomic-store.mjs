// A test AtomicStore over node-redis (`SET key value NX EX ttl GET`, Redis >= 7), for the DBSC
// two-process test until the production Redis AtomicStore is merged. Plain JavaScript: the server
// processes the test spawns import it as they are.

/** @param {import('redis').RedisClientType} client */
export function redisAtomicStore(client) {
  return {
    /** @returns {Promise<string | undefined>} the value already there, or undefined when this call set it */
    async addIfAbsent(key, value, ttlSeconds) {
      const previous = await client.set(key, value, { condition: 'NX', expiration: { type: 'EX', value: ttlSeconds }, GET: true });
      return previous ?? undefined;
    },
    async delete(key) {
      await client.del(key);
    },
  };
}
