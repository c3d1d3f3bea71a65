// Runs once, as the root user (MONGO_ADMIN_USER), when the MongoDB volume is new: the archive's
// writer user, readWrite on the archive database only. The local stack creates the same user.
const db_ = db.getSiblingDB(process.env.MONGO_DB);
db_.createUser({
  user: process.env.MONGO_USER,
  pwd: process.env.MONGO_PASSWORD,
  roles: [{ role: "readWrite", db: process.env.MONGO_DB }],
  mechanisms: ["SCRAM-SHA-256"],
});
