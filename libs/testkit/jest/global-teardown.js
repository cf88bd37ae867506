module.exports = async () => {
  await require('../dist/jest-setup').teardownForJest();
};
