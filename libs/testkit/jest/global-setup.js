// Runs the built harness (scripts/test.sh builds with `tsc -b` before jest).
module.exports = async () => {
  await require('../dist/jest-setup').setupForJest();
};
